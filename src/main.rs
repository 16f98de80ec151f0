//! The `perceptd` command line: a thin layer over the library.

fn main() {
    println!("perceptd");
}

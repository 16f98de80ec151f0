//! The GPU kernels' sources (`kernels/*.cu`, embedded with `include_str!`)
//! and their compilation with NVRTC: to CUBIN for the device's exact
//! architecture at boot (a cubin from a newer 12.x NVRTC runs on an older
//! 12.x driver, PTX would not), to PTX for any architecture in the tests.
//! Compiled images are cached on disk, keyed by a hash of the source, the
//! architecture, the options, the driver and the NVRTC version, so a warm
//! boot skips NVRTC entirely.
//!
//! Boot only; allocates. libnvrtc is `dlopen`ed by [`load`] before any
//! cudarc NVRTC call: first `$PERCEPTD_NVRTC_PATH` (the library file or the
//! folder holding it, e.g. pip's `nvidia/cuda_nvrtc/lib`), then the system's
//! `libnvrtc.so.12`.

use super::CudaError;
use cudarc::nvrtc::sys;
use std::ffi::{c_char, c_int, CStr, CString};
use std::path::{Path, PathBuf};

/// Every kernel source: (module name, CUDA C++).
pub const SOURCES: &[(&str, &str)] = &[
    ("preprocess", include_str!("kernels/preprocess.cu")),
    ("ops", include_str!("kernels/ops.cu")),
];

/// The entry points the backend looks up in each module of [`SOURCES`].
pub const KERNELS: &[(&str, &[&str])] = &[
    ("preprocess", &["preprocess"]),
    (
        "ops",
        &[
            "copy_nd",
            "fill",
            "binary_nd",
            "unary",
            "channel_affine",
            "to_half",
            "im2col",
            "conv_direct",
            "pool2d",
            "global_pool",
            "resize2d",
            "softmax",
        ],
    ),
];

/// What to compile to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Virtual architecture `compute_XY`, PTX text.
    Ptx(u32),
    /// Real architecture `sm_XY`, a loadable cubin.
    Cubin(u32),
}

impl Target {
    fn option(self) -> String {
        match self {
            Target::Ptx(a) => format!("--gpu-architecture=compute_{a}"),
            Target::Cubin(a) => format!("--gpu-architecture=sm_{a}"),
        }
    }
    fn ext(self) -> &'static str {
        match self {
            Target::Ptx(_) => "ptx",
            Target::Cubin(_) => "cubin",
        }
    }
}

/// Fixed compiler options (no fast math: the kernels must match the CPU).
const OPTIONS: &[&str] = &["--std=c++14", "-default-device"];

/// Make libnvrtc loadable for cudarc. Err says where it looked and why it
/// failed. Safe to call repeatedly.
pub fn load() -> Result<String, CudaError> {
    let mut tried = Vec::new();
    if let Some(p) = std::env::var_os("PERCEPTD_NVRTC_PATH") {
        let p = PathBuf::from(p);
        let files: Vec<PathBuf> = if p.is_dir() {
            let mut v: Vec<PathBuf> = std::fs::read_dir(&p)
                .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            v.retain(|f| {
                f.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("libnvrtc.so"))
            });
            v.sort();
            v
        } else {
            vec![p.clone()]
        };
        for f in &files {
            match super::dlopen_any(&[&f.to_string_lossy()]) {
                Ok(_) => break,
                Err(e) => tried.push(e),
            }
        }
        if files.is_empty() {
            tried.push(format!(
                "PERCEPTD_NVRTC_PATH={}: no libnvrtc.so* there",
                p.display()
            ));
        }
    }
    let found = super::dlopen_any(&["libnvrtc.so.12", "libnvrtc.so", "libnvrtc.so.11.2"]);
    if let Err(e) = &found {
        tried.push(e.clone());
    }
    // SAFETY: only dlopens cudarc's candidate names.
    if !unsafe { sys::is_culib_present() } {
        return Err(CudaError::Unavailable(format!(
            "NVRTC (libnvrtc.so.12) was not found: {}; install the CUDA toolkit's NVRTC or pip's nvidia-cuda-nvrtc-cu12 and set PERCEPTD_NVRTC_PATH to its lib folder",
            tried.join("; ")
        )));
    }
    Ok(found.unwrap_or_else(|_| "libnvrtc".into()))
}

/// NVRTC's version as `major * 1000 + minor * 10` (12090 for 12.9).
pub fn version() -> Result<i32, CudaError> {
    load()?;
    let (mut major, mut minor): (c_int, c_int) = (0, 0);
    // SAFETY: libnvrtc is loaded; valid out-pointers.
    let r = unsafe { sys::nvrtcVersion(&mut major, &mut minor) };
    nv_check(r, "nvrtcVersion")?;
    Ok(major * 1000 + minor * 10)
}

fn nv_check(r: sys::nvrtcResult, what: &str) -> Result<(), CudaError> {
    if r == sys::nvrtcResult::NVRTC_SUCCESS {
        Ok(())
    } else {
        Err(CudaError::Nvrtc(format!("{what}: {r:?}")))
    }
}

/// Compile `src` (module `name`) for `target`. The error holds NVRTC's
/// whole log. Loads libnvrtc first.
pub fn compile(name: &str, src: &str, target: Target) -> Result<Vec<u8>, CudaError> {
    load()?;
    let csrc =
        CString::new(src).map_err(|_| CudaError::Nvrtc(format!("{name}.cu has a NUL byte")))?;
    let cname = CString::new(format!("{name}.cu")).unwrap_or_default();
    let mut opts: Vec<CString> = OPTIONS
        .iter()
        .filter_map(|o| CString::new(*o).ok())
        .collect();
    opts.push(CString::new(target.option()).unwrap_or_default());
    let opt_ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
    let mut prog: sys::nvrtcProgram = std::ptr::null_mut();
    // SAFETY: libnvrtc is loaded; every pointer is a live C string or
    // out-pointer for the duration of the calls; the program is destroyed
    // on every path below.
    unsafe {
        nv_check(
            sys::nvrtcCreateProgram(
                &mut prog,
                csrc.as_ptr(),
                cname.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            ),
            "nvrtcCreateProgram",
        )?;
        let r = sys::nvrtcCompileProgram(prog, opt_ptrs.len() as c_int, opt_ptrs.as_ptr());
        let result = if r != sys::nvrtcResult::NVRTC_SUCCESS {
            let mut n: usize = 0;
            let mut log = String::new();
            if sys::nvrtcGetProgramLogSize(prog, &mut n) == sys::nvrtcResult::NVRTC_SUCCESS && n > 1
            {
                let mut buf = vec![0 as c_char; n];
                if sys::nvrtcGetProgramLog(prog, buf.as_mut_ptr())
                    == sys::nvrtcResult::NVRTC_SUCCESS
                {
                    log = CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned();
                }
            }
            Err(CudaError::Nvrtc(format!(
                "compiling {name}.cu for {}: {r:?}\n{log}",
                target.option()
            )))
        } else {
            let mut n: usize = 0;
            let (size_r, get) = match target {
                Target::Ptx(_) => (sys::nvrtcGetPTXSize(prog, &mut n), 0),
                Target::Cubin(_) => (sys::nvrtcGetCUBINSize(prog, &mut n), 1),
            };
            match nv_check(size_r, "getting the image size") {
                Err(e) => Err(e),
                Ok(()) => {
                    let mut buf = vec![0u8; n];
                    let r = if get == 0 {
                        sys::nvrtcGetPTX(prog, buf.as_mut_ptr() as *mut c_char)
                    } else {
                        sys::nvrtcGetCUBIN(prog, buf.as_mut_ptr() as *mut c_char)
                    };
                    nv_check(r, "getting the image").map(|_| buf)
                }
            }
        };
        let _ = sys::nvrtcDestroyProgram(&mut prog);
        result
    }
}

/// FNV-1a, 64 bits: a stable cache key (std's hasher may change).
fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        for &b in *p {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h ^= 0xff;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// Cache file name of one compiled module.
pub fn cache_key(name: &str, src: &str, target: Target, driver: i32, nvrtc: i32) -> String {
    let opts = OPTIONS.join(" ") + &target.option();
    let h = fnv(&[
        src.as_bytes(),
        opts.as_bytes(),
        &driver.to_le_bytes(),
        &nvrtc.to_le_bytes(),
    ]);
    format!("{name}-{h:016x}.{}", target.ext())
}

/// Where compiled kernels are cached: `configured`, else systemd's
/// `$CACHE_DIRECTORY`, else `$XDG_CACHE_HOME/perceptd`, else
/// `~/.cache/perceptd`; `None` when none is known.
pub fn cache_dir(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(p) = configured {
        return Some(p.to_path_buf());
    }
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if let Some(d) = env("CACHE_DIRECTORY") {
        // systemd may pass several, colon-separated: take the first.
        let s = d.to_string_lossy().into_owned();
        return Some(PathBuf::from(s.split(':').next().unwrap_or(&s)).join("kernels"));
    }
    if let Some(d) = env("XDG_CACHE_HOME") {
        return Some(d.join("perceptd"));
    }
    env("HOME").map(|h| h.join(".cache").join("perceptd"))
}

/// Compile `name` for `target`, or read it from the cache; writes the cache
/// (atomically, by rename) after a compile. Cache problems are warnings.
pub fn compile_cached(
    name: &str,
    src: &str,
    target: Target,
    driver: i32,
    dir: Option<&Path>,
) -> Result<(Vec<u8>, bool), CudaError> {
    let nv = version()?;
    let key = cache_key(name, src, target, driver, nv);
    if let Some(d) = dir {
        let f = d.join(&key);
        if let Ok(bytes) = std::fs::read(&f) {
            if !bytes.is_empty() {
                return Ok((bytes, true));
            }
        }
    }
    let img = compile(name, src, target)?;
    if let Some(d) = dir {
        let f = d.join(&key);
        let tmp = d.join(format!("{key}.tmp{}", std::process::id()));
        let w = std::fs::create_dir_all(d)
            .and_then(|_| std::fs::write(&tmp, &img))
            .and_then(|_| std::fs::rename(&tmp, &f));
        if let Err(e) = w {
            log::warn!(
                "kernel cache {}: {e}; compiling again next boot",
                d.display()
            );
            let _ = std::fs::remove_file(&tmp);
        }
    }
    Ok((img, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_change_with_source_arch_and_versions() {
        let k = cache_key("ops", "a", Target::Cubin(87), 12040, 12090);
        assert!(k.starts_with("ops-") && k.ends_with(".cubin"));
        assert_ne!(k, cache_key("ops", "b", Target::Cubin(87), 12040, 12090));
        assert_ne!(k, cache_key("ops", "a", Target::Cubin(90), 12040, 12090));
        assert_ne!(k, cache_key("ops", "a", Target::Cubin(87), 12050, 12090));
        assert_ne!(k, cache_key("ops", "a", Target::Cubin(87), 12040, 12080));
        assert_eq!(k, cache_key("ops", "a", Target::Cubin(87), 12040, 12090));
    }

    #[test]
    fn cache_dir_prefers_the_config_then_systemd() {
        assert_eq!(
            cache_dir(Some(Path::new("/x/y"))),
            Some(PathBuf::from("/x/y"))
        );
    }
}

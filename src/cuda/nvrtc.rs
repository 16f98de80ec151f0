//! The GPU kernels' sources (`kernels/*.cu`, embedded with `include_str!`)
//! and their compilation with NVRTC: to CUBIN for the device's exact
//! architecture at boot (a cubin from a newer 12.x NVRTC runs on an older
//! 12.x driver, PTX would not), to PTX for a GPU newer than NVRTC knows
//! (the driver JIT-compiles it), to PTX for any architecture in the tests.
//! A driver of an older major version than NVRTC (JetPack 5's CUDA 11.4
//! with cu12 NVRTC) can load neither: boot refuses with what to install.
//!
//! Compiled images are cached on disk, keyed by a hash of the source, the
//! target, the options and the driver version, and the cache is consulted
//! before NVRTC is loaded: a warm boot needs no libnvrtc at all. An image
//! the driver refuses is deleted and compiled again.
//!
//! libnvrtc is `dlopen`ed by [`load`] and its functions are resolved from
//! that very handle (not through cudarc, whose own search prefers an
//! unversioned `libnvrtc.so`, possibly another toolkit's): exactly
//! `$PERCEPTD_NVRTC_PATH` when it is set (the library file or the folder
//! holding it, e.g. pip's `nvidia/cuda_nvrtc/lib`), else the system's
//! `libnvrtc.so.12`, `.13`, `.11.2`, `libnvrtc.so`.
//!
//! Boot only; allocates.

use super::CudaError;
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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

/// Fixed compiler options. No `--use_fast_math` (no approximate
/// transcendentals, no flush-to-zero, IEEE division and square root).
/// NVRTC's default `--fmad=true` stays: it contracts `a * b + c` into one
/// fused multiply-add (one rounding instead of two), as the CPU backend's
/// FMA kernels do; the results differ from the CPU's by rounding only,
/// which gpu-check's tolerances cover.
const OPTIONS: &[&str] = &["--std=c++14", "-default-device"];

type Prog = *mut c_void;

/// NVRTC's functions, resolved from the handle [`load`] opened. Each
/// returns an `nvrtcResult` (0 = success).
struct Api {
    version: unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int,
    create: unsafe extern "C" fn(
        *mut Prog,
        *const c_char,
        *const c_char,
        c_int,
        *const *const c_char,
        *const *const c_char,
    ) -> c_int,
    compile: unsafe extern "C" fn(Prog, c_int, *const *const c_char) -> c_int,
    destroy: unsafe extern "C" fn(*mut Prog) -> c_int,
    log_size: unsafe extern "C" fn(Prog, *mut usize) -> c_int,
    log: unsafe extern "C" fn(Prog, *mut c_char) -> c_int,
    ptx_size: unsafe extern "C" fn(Prog, *mut usize) -> c_int,
    ptx: unsafe extern "C" fn(Prog, *mut c_char) -> c_int,
    cubin_size: unsafe extern "C" fn(Prog, *mut usize) -> c_int,
    cubin: unsafe extern "C" fn(Prog, *mut c_char) -> c_int,
    num_archs: unsafe extern "C" fn(*mut c_int) -> c_int,
    archs: unsafe extern "C" fn(*mut c_int) -> c_int,
    /// The file or soname it was loaded from.
    from: String,
}

/// Where to look for libnvrtc: exactly `$PERCEPTD_NVRTC_PATH` when set
/// (a file, or every `libnvrtc.so*` in a folder), else the system names.
fn candidates() -> Vec<String> {
    let Some(p) = std::env::var_os("PERCEPTD_NVRTC_PATH").filter(|p| !p.is_empty()) else {
        return [
            "libnvrtc.so.12",
            "libnvrtc.so.13",
            "libnvrtc.so.11.2",
            "libnvrtc.so",
        ]
        .map(String::from)
        .to_vec();
    };
    let p = PathBuf::from(p);
    if !p.is_dir() {
        return vec![p.to_string_lossy().into_owned()];
    }
    let mut v: Vec<String> = std::fs::read_dir(&p)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|f| {
                    f.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("libnvrtc.so"))
                })
                .map(|f| f.to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    // Versioned files first (libnvrtc.so.12 before a bare libnvrtc.so).
    v.sort_by_key(|f| std::cmp::Reverse(f.len()));
    v
}

/// A symbol's address as the function pointer type `F`.
///
/// # Safety
/// `p` is the address of a C function whose signature is exactly `F`.
unsafe fn fn_ptr<F: Copy>(p: *mut c_void) -> F {
    assert_eq!(size_of::<F>(), size_of::<*mut c_void>());
    // SAFETY: same size (checked); the caller vouches for the signature.
    unsafe { std::mem::transmute_copy(&p) }
}

fn open_api() -> Result<Api, String> {
    let names = candidates();
    if names.is_empty() {
        return Err(format!(
            "PERCEPTD_NVRTC_PATH={}: no libnvrtc.so* there",
            std::env::var("PERCEPTD_NVRTC_PATH").unwrap_or_default()
        ));
    }
    let mut why = Vec::new();
    for n in &names {
        let Ok(c) = CString::new(n.as_str()) else {
            continue;
        };
        // SAFETY: a valid C string; the handle is kept for the process.
        let h = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if h.is_null() {
            // SAFETY: dlerror returns null or a thread-local C string.
            let e = unsafe { libc::dlerror() };
            why.push(if e.is_null() {
                format!("{n}: not found")
            } else {
                // SAFETY: non-null dlerror result is a valid C string.
                unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned()
            });
            continue;
        }
        let sym = |s: &str| -> Result<*mut c_void, String> {
            let cs = CString::new(s).unwrap_or_default();
            // SAFETY: h is a live handle, cs a valid C string.
            let f = unsafe { libc::dlsym(h, cs.as_ptr()) };
            if f.is_null() {
                Err(format!("{n} lacks {s}"))
            } else {
                Ok(f)
            }
        };
        // SAFETY: each symbol is NVRTC's documented C function of exactly
        // this signature (nvrtc.h, CUDA 11.2 and later).
        let api = (|| unsafe {
            Ok::<Api, String>(Api {
                version: fn_ptr(sym("nvrtcVersion")?),
                create: fn_ptr(sym("nvrtcCreateProgram")?),
                compile: fn_ptr(sym("nvrtcCompileProgram")?),
                destroy: fn_ptr(sym("nvrtcDestroyProgram")?),
                log_size: fn_ptr(sym("nvrtcGetProgramLogSize")?),
                log: fn_ptr(sym("nvrtcGetProgramLog")?),
                ptx_size: fn_ptr(sym("nvrtcGetPTXSize")?),
                ptx: fn_ptr(sym("nvrtcGetPTX")?),
                cubin_size: fn_ptr(sym("nvrtcGetCUBINSize")?),
                cubin: fn_ptr(sym("nvrtcGetCUBIN")?),
                num_archs: fn_ptr(sym("nvrtcGetNumSupportedArchs")?),
                archs: fn_ptr(sym("nvrtcGetSupportedArchs")?),
                from: n.clone(),
            })
        })();
        match api {
            Ok(a) => return Ok(a),
            Err(e) => why.push(e),
        }
    }
    Err(why.join("; "))
}

fn api() -> Result<&'static Api, CudaError> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(open_api).as_ref().map_err(|tried| {
        CudaError::Unavailable(format!(
            "NVRTC (libnvrtc.so.12) was not found: {tried}; install the CUDA toolkit's NVRTC or pip's nvidia-cuda-nvrtc-cu12 and set PERCEPTD_NVRTC_PATH to its lib folder"
        ))
    })
}

/// Load libnvrtc (once per process). Ok: the file or name it came from.
pub fn load() -> Result<String, CudaError> {
    Ok(api()?.from.clone())
}

/// NVRTC's version as `major * 1000 + minor * 10` (12090 for 12.9).
pub fn version() -> Result<i32, CudaError> {
    let a = api()?;
    let (mut major, mut minor): (c_int, c_int) = (0, 0);
    // SAFETY: resolved from libnvrtc; valid out-pointers.
    nv_check(
        unsafe { (a.version)(&mut major, &mut minor) },
        "nvrtcVersion",
    )?;
    Ok(major * 1000 + minor * 10)
}

/// The real architectures this NVRTC can compile for (e.g. 50..=90).
pub fn supported_archs() -> Result<Vec<u32>, CudaError> {
    let a = api()?;
    let mut n: c_int = 0;
    // SAFETY: valid out-pointer, then a buffer of n ints.
    unsafe {
        nv_check((a.num_archs)(&mut n), "nvrtcGetNumSupportedArchs")?;
        let mut v = vec![0 as c_int; n.max(0) as usize];
        nv_check((a.archs)(v.as_mut_ptr()), "nvrtcGetSupportedArchs")?;
        Ok(v.into_iter().map(|x| x as u32).collect())
    }
}

fn nv_check(r: c_int, what: &str) -> Result<(), CudaError> {
    if r == 0 {
        Ok(())
    } else {
        Err(CudaError::Nvrtc(format!("{what}: nvrtcResult {r}")))
    }
}

/// Compile `src` (module `name`) for `target`. The error holds NVRTC's
/// whole log. Loads libnvrtc first.
pub fn compile(name: &str, src: &str, target: Target) -> Result<Vec<u8>, CudaError> {
    let a = api()?;
    let csrc =
        CString::new(src).map_err(|_| CudaError::Nvrtc(format!("{name}.cu has a NUL byte")))?;
    let cname = CString::new(format!("{name}.cu")).unwrap_or_default();
    let mut opts: Vec<CString> = OPTIONS
        .iter()
        .filter_map(|o| CString::new(*o).ok())
        .collect();
    opts.push(CString::new(target.option()).unwrap_or_default());
    let opt_ptrs: Vec<*const c_char> = opts.iter().map(|o| o.as_ptr()).collect();
    let mut prog: Prog = std::ptr::null_mut();
    // SAFETY: every pointer is a live C string or out-pointer for the
    // duration of the calls; the program is destroyed on every path below.
    unsafe {
        nv_check(
            (a.create)(
                &mut prog,
                csrc.as_ptr(),
                cname.as_ptr(),
                0,
                std::ptr::null(),
                std::ptr::null(),
            ),
            "nvrtcCreateProgram",
        )?;
        let r = (a.compile)(prog, opt_ptrs.len() as c_int, opt_ptrs.as_ptr());
        let result = if r != 0 {
            let mut n: usize = 0;
            let mut log = String::new();
            if (a.log_size)(prog, &mut n) == 0 && n > 1 {
                let mut buf = vec![0 as c_char; n];
                if (a.log)(prog, buf.as_mut_ptr()) == 0 {
                    log = CStr::from_ptr(buf.as_ptr()).to_string_lossy().into_owned();
                }
            }
            Err(CudaError::Nvrtc(format!(
                "compiling {name}.cu for {}: nvrtcResult {r}\n{log}",
                target.option()
            )))
        } else {
            let mut n: usize = 0;
            let (size_r, get) = match target {
                Target::Ptx(_) => ((a.ptx_size)(prog, &mut n), a.ptx),
                Target::Cubin(_) => ((a.cubin_size)(prog, &mut n), a.cubin),
            };
            nv_check(size_r, "getting the image size").and_then(|_| {
                let mut buf = vec![0u8; n];
                nv_check(
                    get(prog, buf.as_mut_ptr() as *mut c_char),
                    "getting the image",
                )
                .map(|_| buf)
            })
        };
        let _ = (a.destroy)(&mut prog);
        result
    }
}

/// What to compile for a GPU of architecture `arch` (e.g. 87) under a
/// driver of version `driver`, with NVRTC `nvrtc` that knows `archs`:
/// a cubin for `arch`; PTX for the newest architecture NVRTC knows when
/// the GPU is newer (the driver JIT-compiles it); and a refusal saying
/// what to install when the driver's major version is older than NVRTC's
/// (neither its cubins nor its PTX would load).
pub fn choose_target(
    arch: u32,
    driver: i32,
    nvrtc: i32,
    archs: &[u32],
) -> Result<Target, CudaError> {
    let (dmaj, nmaj) = (driver / 1000, nvrtc / 1000);
    if dmaj < nmaj {
        return Err(CudaError::Unavailable(format!(
            "the NVIDIA driver supports CUDA {}.{} but NVRTC is {}.{}: a newer NVRTC's kernels do not load on an older driver; install NVRTC {dmaj}.x (e.g. pip's nvidia-cuda-nvrtc-cu{dmaj}) and point PERCEPTD_NVRTC_PATH at it, or update the driver",
            dmaj,
            (driver % 1000) / 10,
            nmaj,
            (nvrtc % 1000) / 10
        )));
    }
    if archs.is_empty() || archs.contains(&arch) {
        return Ok(Target::Cubin(arch));
    }
    match archs.iter().copied().filter(|&a| a < arch).max() {
        Some(a) => Ok(Target::Ptx(a)),
        None => Err(CudaError::Unavailable(format!(
            "NVRTC cannot compile for sm_{arch} (it knows sm_{:?})",
            archs
        ))),
    }
}

/// Loads one module image into the driver (`cuModuleLoadData`); Err: the
/// driver's result.
pub type ImageLoader<'a> =
    dyn FnMut(&'static str, &[u8]) -> Result<(), cudarc::driver::sys::CUresult> + 'a;

/// Compile (or take from the cache in `dir`) every module of [`SOURCES`]
/// for `info`'s GPU and hand each image to `load_image` (the driver's
/// `cuModuleLoadData`; Err: its CUresult). The cache is read before NVRTC
/// is loaded; a cached image the driver refuses is deleted and compiled
/// again. Boot only.
pub fn load_modules(
    info: &super::DeviceInfo,
    dir: Option<&Path>,
    load_image: &mut ImageLoader<'_>,
) -> Result<(), CudaError> {
    let arch = (info.cc.0 * 10 + info.cc.1) as u32;
    for (name, src) in SOURCES {
        let t0 = std::time::Instant::now();
        let key = cache_key(name, src, Target::Cubin(arch), info.driver_version);
        if let Some(d) = dir {
            let f = d.join(&key);
            if let Ok(mut img) = std::fs::read(&f) {
                if !img.is_empty() {
                    img.push(0); // PTX text must end in NUL; cubins ignore it
                    match load_image(name, &img) {
                        Ok(()) => {
                            log::info!(
                                "kernels {name}.cu for sm_{arch}: from the cache in {:.0} ms",
                                t0.elapsed().as_secs_f64() * 1e3
                            );
                            continue;
                        }
                        Err(r) => {
                            log::warn!(
                                "kernel cache {}: the driver refuses it ({}); compiling again",
                                f.display(),
                                super::driver_error(r, "cuModuleLoadData")
                            );
                            let _ = std::fs::remove_file(&f);
                        }
                    }
                }
            }
        }
        let target = choose_target(arch, info.driver_version, version()?, &supported_archs()?)?;
        let mut img = compile(name, src, target)?;
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
        img.push(0);
        load_image(name, &img).map_err(|r| {
            super::driver_error(
                r,
                &format!("loading the {name} kernels ({})", target.option()),
            )
        })?;
        log::info!(
            "kernels {name}.cu for sm_{arch}: compiled ({}) in {:.0} ms",
            target.option(),
            t0.elapsed().as_secs_f64() * 1e3
        );
    }
    Ok(())
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

/// Cache file name of one compiled module. No NVRTC version in it: the
/// cache is read before NVRTC is loaded (a warm boot needs none), and an
/// image compiled by another NVRTC for the same GPU and driver is as good.
pub fn cache_key(name: &str, src: &str, target: Target, driver: i32) -> String {
    let opts = OPTIONS.join(" ") + &target.option();
    let h = fnv(&[src.as_bytes(), opts.as_bytes(), &driver.to_le_bytes()]);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keys_change_with_source_arch_and_driver() {
        let k = cache_key("ops", "a", Target::Cubin(87), 12040);
        assert!(k.starts_with("ops-") && k.ends_with(".cubin"));
        assert_ne!(k, cache_key("ops", "b", Target::Cubin(87), 12040));
        assert_ne!(k, cache_key("ops", "a", Target::Cubin(90), 12040));
        assert_ne!(k, cache_key("ops", "a", Target::Cubin(87), 12050));
        assert_eq!(k, cache_key("ops", "a", Target::Cubin(87), 12040));
    }

    /// JetPack 5 (driver 11.4) with cu12 NVRTC: a refusal naming what to
    /// install; a GPU newer than NVRTC: PTX for the newest it knows.
    #[test]
    fn target_is_cubin_ptx_or_a_clear_refusal() {
        let archs = [75, 80, 86, 87, 89, 90];
        assert_eq!(
            choose_target(87, 12040, 12090, &archs).unwrap(),
            Target::Cubin(87)
        );
        assert_eq!(
            choose_target(87, 12020, 12090, &archs).unwrap(),
            Target::Cubin(87)
        );
        assert_eq!(
            choose_target(120, 12090, 12040, &archs).unwrap(),
            Target::Ptx(90)
        );
        let e = choose_target(87, 11040, 12090, &archs)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CUDA 11.4") && e.contains("nvidia-cuda-nvrtc-cu11"),
            "{e}"
        );
    }

    /// A warm boot reads the cache before NVRTC is loaded: with every image
    /// in the cache, loading succeeds although NVRTC cannot be found.
    #[test]
    fn cached_kernels_load_without_nvrtc() {
        let dir = std::env::temp_dir().join(format!("perceptd-kcache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let info = super::super::DeviceInfo {
            ordinal: 0,
            name: "test".into(),
            cc: (8, 7),
            sms: 1,
            total_mem: 0,
            integrated: true,
            can_map_host: true,
            driver_version: 11040, // older than any NVRTC 12: compiling would refuse
            count: 1,
        };
        for (name, src) in SOURCES {
            std::fs::write(
                dir.join(cache_key(name, src, Target::Cubin(87), 11040)),
                b"img",
            )
            .unwrap();
        }
        let mut loaded = Vec::new();
        load_modules(&info, Some(&dir), &mut |n, img| {
            assert_eq!(img, b"img\0");
            loaded.push(n);
            Ok(())
        })
        .unwrap();
        assert_eq!(loaded.len(), SOURCES.len());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn cache_dir_prefers_the_config_then_systemd() {
        assert_eq!(
            cache_dir(Some(Path::new("/x/y"))),
            Some(PathBuf::from("/x/y"))
        );
    }
}

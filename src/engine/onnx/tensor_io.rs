//! `onnx.TensorProto` ⇄ [`Tensor`]: element types, dims, data from
//! `raw_data`, the typed fields or an external file, float16 conversion, and
//! the size checks that keep a hostile file from making us allocate more
//! than it contains or than [`Limits`] allows.
//!
//! Invariant: no buffer is sized from a declared shape before that shape has
//! been checked against the memory limits *and* against the bytes actually
//! present (in the protobuf or the external file).
//!
//! Boot only (main thread); allocates.

use super::proto::{tensor_proto, StringStringEntryProto, TensorProto};
use super::Limits;
use crate::engine::error::EngineError;
use crate::engine::half::{f16_to_f32, f32_to_f16};
use crate::engine::tensor::{DType, Storage, Tensor, TensorData};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

/// Where the bytes being decoded came from and how much they may cost.
/// One per model (or tensor file): `total_bytes` adds up every decoded
/// constant against [`Limits::max_total_bytes`].
pub(crate) struct LoadCtx<'a> {
    pub display_path: &'a str,
    /// Folder that external data locations are relative to (`None`: the
    /// model came from memory and may not use external data).
    pub base_dir: Option<&'a Path>,
    pub limits: &'a Limits,
    pub total_bytes: u128,
}

impl<'a> LoadCtx<'a> {
    pub fn new(display_path: &'a str, base_dir: Option<&'a Path>, limits: &'a Limits) -> Self {
        LoadCtx {
            display_path,
            base_dir,
            limits,
            total_bytes: 0,
        }
    }

    pub fn invalid(&self, msg: impl Into<String>) -> EngineError {
        EngineError::InvalidModel {
            path: self.display_path.to_string(),
            msg: msg.into(),
        }
    }

    fn io(&self, path: &Path, msg: impl std::fmt::Display) -> EngineError {
        EngineError::Io {
            path: path.display().to_string(),
            msg: format!("{msg} (external data of {})", self.display_path),
        }
    }
}

/// Bytes per element in ONNX's little-endian serialisation.
pub(crate) fn onnx_elem_bytes(dt: DType) -> u64 {
    match dt {
        DType::Bool | DType::I8 | DType::U8 => 1,
        DType::F16 | DType::I16 | DType::U16 => 2,
        DType::F32 | DType::I32 | DType::U32 => 4,
        DType::F64 | DType::I64 | DType::U64 => 8,
    }
}

/// Bytes per element in the engine's storage (f32 / i64 / bool).
fn storage_elem_bytes(dt: DType) -> u64 {
    match dt.storage() {
        Storage::F32 => 4,
        Storage::I64 => 8,
        Storage::Bool => 1,
    }
}

/// Name of an ONNX data type code for messages: `BFLOAT16 (16)`.
pub(crate) fn dtype_code_name(code: i32) -> String {
    match tensor_proto::DataType::try_from(code) {
        Ok(dt) => format!("{} ({code})", dt.as_str_name()),
        Err(_) => format!("unknown ({code})"),
    }
}

/// Decode one `TensorProto`. `what` names it in messages ("initializer
/// 'conv.weight'"); `name` is what [`EngineError::MemoryLimit`] reports.
pub(crate) fn tensor_from_proto(
    tp: &TensorProto,
    what: &str,
    name: &str,
    ctx: &mut LoadCtx,
) -> Result<Tensor, EngineError> {
    let code = tp.data_type.unwrap_or(0);
    let dtype = DType::from_onnx_code(code).ok_or_else(|| {
        ctx.invalid(format!(
            "{what} has data type {}, which the engine does not support",
            dtype_code_name(code)
        ))
    })?;
    if tp.segment.is_some() {
        return Err(ctx.invalid(format!(
            "{what} is a segment of a larger tensor, which is not supported"
        )));
    }
    let mut shape = Vec::with_capacity(tp.dims.len());
    for &d in &tp.dims {
        let u = usize::try_from(d).map_err(|_| {
            ctx.invalid(format!(
                "{what} has dims {:?}: dimension {d} is not a valid size",
                tp.dims
            ))
        })?;
        shape.push(u);
    }
    // The product of the non-zero dims must fit, so that strides computed
    // later by any op can never overflow, even for an empty tensor.
    let span = shape
        .iter()
        .try_fold(1u128, |acc, &d| acc.checked_mul(d.max(1) as u128))
        .filter(|&n| n <= usize::MAX as u128)
        .ok_or_else(|| {
            ctx.invalid(format!(
                "{what} has dims {:?} whose product overflows",
                tp.dims
            ))
        })?;
    let numel = if shape.contains(&0) { 0 } else { span };

    let needed = numel * storage_elem_bytes(dtype).max(onnx_elem_bytes(dtype)) as u128;
    let limits = ctx.limits;
    if needed > limits.max_tensor_bytes as u128 {
        return Err(EngineError::MemoryLimit {
            tensor: name.to_string(),
            needed,
            limit: limits.max_tensor_bytes as u128,
        });
    }
    let total = ctx.total_bytes + needed;
    if total > limits.max_total_bytes as u128 {
        return Err(EngineError::MemoryLimit {
            tensor: name.to_string(),
            needed: total,
            limit: limits.max_total_bytes as u128,
        });
    }
    // numel <= needed <= max_tensor_bytes (u64) and the span fits usize.
    let n = numel as usize;
    let raw_len = numel * onnx_elem_bytes(dtype) as u128;

    let location = tp.data_location.unwrap_or(0);
    let data = if location == tensor_proto::DataLocation::External as i32 {
        let bytes = read_external(&tp.external_data, what, raw_len as u64, ctx)?;
        decode_raw(&bytes, dtype, n, what, ctx)?
    } else if location != tensor_proto::DataLocation::Default as i32 {
        return Err(ctx.invalid(format!("{what} has unknown data_location {location}")));
    } else if let Some(raw) = tp.raw_data.as_deref().filter(|r| !r.is_empty() || n == 0) {
        if raw.len() as u128 != raw_len {
            return Err(ctx.invalid(format!(
                "{what} has dims {:?} ({numel} {dtype} elements, {raw_len} bytes) but raw_data holds {} bytes",
                tp.dims,
                raw.len()
            )));
        }
        decode_raw(raw, dtype, n, what, ctx)?
    } else {
        decode_typed(tp, dtype, n, what, ctx)?
    };
    ctx.total_bytes = total;
    Ok(Tensor { dtype, shape, data })
}

/// Little-endian `raw_data` (length already checked to be `n` elements).
fn decode_raw(
    raw: &[u8],
    dtype: DType,
    n: usize,
    what: &str,
    ctx: &LoadCtx,
) -> Result<TensorData, EngineError> {
    fn le<const N: usize>(raw: &[u8]) -> impl Iterator<Item = [u8; N]> + '_ {
        raw.chunks_exact(N).map(|c| {
            let mut a = [0u8; N];
            a.copy_from_slice(c);
            a
        })
    }
    debug_assert_eq!(raw.len() as u64, n as u64 * onnx_elem_bytes(dtype));
    Ok(match dtype {
        DType::F32 => TensorData::F32(le::<4>(raw).map(f32::from_le_bytes).collect()),
        DType::F16 => TensorData::F32(
            le::<2>(raw)
                .map(|b| f16_to_f32(u16::from_le_bytes(b)))
                .collect(),
        ),
        DType::F64 => TensorData::F32(le::<8>(raw).map(|b| f64::from_le_bytes(b) as f32).collect()),
        DType::I64 => TensorData::I64(le::<8>(raw).map(i64::from_le_bytes).collect()),
        DType::I32 => TensorData::I64(le::<4>(raw).map(|b| i32::from_le_bytes(b) as i64).collect()),
        DType::I16 => TensorData::I64(le::<2>(raw).map(|b| i16::from_le_bytes(b) as i64).collect()),
        DType::I8 => TensorData::I64(raw.iter().map(|&b| b as i8 as i64).collect()),
        DType::U8 => TensorData::I64(raw.iter().map(|&b| b as i64).collect()),
        DType::U16 => TensorData::I64(le::<2>(raw).map(|b| u16::from_le_bytes(b) as i64).collect()),
        DType::U32 => TensorData::I64(le::<4>(raw).map(|b| u32::from_le_bytes(b) as i64).collect()),
        DType::U64 => TensorData::I64(u64_to_i64(
            le::<8>(raw).map(u64::from_le_bytes),
            n,
            what,
            ctx,
        )?),
        DType::Bool => TensorData::Bool(raw.iter().map(|&b| b != 0).collect()),
    })
}

fn u64_to_i64(
    it: impl Iterator<Item = u64>,
    n: usize,
    what: &str,
    ctx: &LoadCtx,
) -> Result<Vec<i64>, EngineError> {
    let mut v = Vec::with_capacity(n);
    for x in it {
        v.push(i64::try_from(x).map_err(|_| {
            ctx.invalid(format!(
                "{what} holds the uint64 value {x}, which does not fit the engine's int64 storage"
            ))
        })?);
    }
    Ok(v)
}

/// Data from the field that ONNX assigns to `dtype` (`float_data`,
/// `int32_data`, ...); its length must match the dims.
fn decode_typed(
    tp: &TensorProto,
    dtype: DType,
    n: usize,
    what: &str,
    ctx: &LoadCtx,
) -> Result<TensorData, EngineError> {
    let (field, len) = match dtype {
        DType::F32 => ("float_data", tp.float_data.len()),
        DType::F64 => ("double_data", tp.double_data.len()),
        DType::I64 => ("int64_data", tp.int64_data.len()),
        DType::U32 | DType::U64 => ("uint64_data", tp.uint64_data.len()),
        _ => ("int32_data", tp.int32_data.len()),
    };
    if len != n {
        return Err(ctx.invalid(format!(
            "{what} has dims {:?} ({n} elements) but {} holds {len} values{}",
            tp.dims,
            field,
            if len == 0 {
                " (and there is no raw_data)"
            } else {
                ""
            }
        )));
    }
    let i32s = || tp.int32_data.iter().copied();
    Ok(match dtype {
        DType::F32 => TensorData::F32(tp.float_data.clone()),
        DType::F64 => TensorData::F32(tp.double_data.iter().map(|&x| x as f32).collect()),
        DType::F16 => TensorData::F32(i32s().map(|x| f16_to_f32(x as u16)).collect()),
        DType::I64 => TensorData::I64(tp.int64_data.clone()),
        DType::I32 => TensorData::I64(i32s().map(|x| x as i64).collect()),
        DType::I16 => TensorData::I64(i32s().map(|x| x as i16 as i64).collect()),
        DType::I8 => TensorData::I64(i32s().map(|x| x as i8 as i64).collect()),
        DType::U16 => TensorData::I64(i32s().map(|x| x as u16 as i64).collect()),
        DType::U8 => TensorData::I64(i32s().map(|x| x as u8 as i64).collect()),
        DType::U32 => TensorData::I64(tp.uint64_data.iter().map(|&x| x as u32 as i64).collect()),
        DType::U64 => TensorData::I64(u64_to_i64(tp.uint64_data.iter().copied(), n, what, ctx)?),
        DType::Bool => TensorData::Bool(i32s().map(|x| x != 0).collect()),
    })
}

/// Read `expected` bytes of external data. The location must stay inside
/// the model's folder: no absolute path, no `..`, no symlink leading out.
fn read_external(
    entries: &[StringStringEntryProto],
    what: &str,
    expected: u64,
    ctx: &LoadCtx,
) -> Result<Vec<u8>, EngineError> {
    let get = |key: &str| {
        entries
            .iter()
            .find(|e| e.key.as_deref() == Some(key))
            .map(|e| e.value.as_deref().unwrap_or(""))
    };
    let location = get("location")
        .filter(|l| !l.is_empty())
        .ok_or_else(|| ctx.invalid(format!("{what} uses external data without a location")))?;
    let parse = |key: &str| -> Result<Option<u64>, EngineError> {
        match get(key) {
            None => Ok(None),
            Some(s) => s.trim().parse::<u64>().map(Some).map_err(|_| {
                ctx.invalid(format!(
                    "{what}: external data {key} '{s}' is not a non-negative integer"
                ))
            }),
        }
    };
    let offset = parse("offset")?.unwrap_or(0);
    let length = parse("length")?;

    let rel = Path::new(location);
    for c in rel.components() {
        match c {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => {
                return Err(ctx.invalid(format!(
                    "{what}: external data location '{location}' contains '..'; it must stay inside the model's folder"
                )))
            }
            Component::RootDir | Component::Prefix(_) => {
                return Err(ctx.invalid(format!(
                    "{what}: external data location '{location}' is an absolute path; it must be relative to the model's folder"
                )))
            }
        }
    }
    let base = ctx.base_dir.ok_or_else(|| {
        ctx.invalid(format!(
            "{what} uses external data ('{location}') but the model was not loaded from a file, so there is no folder to find it in"
        ))
    })?;
    let base: PathBuf = if base.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        base.to_path_buf()
    };
    let joined = base.join(rel);
    let canon_base = base
        .canonicalize()
        .map_err(|e| ctx.io(&base, format!("cannot resolve the model folder: {e}")))?;
    let canon = joined
        .canonicalize()
        .map_err(|e| ctx.io(&joined, format!("cannot open external data of {what}: {e}")))?;
    if !canon.starts_with(&canon_base) {
        return Err(ctx.invalid(format!(
            "{what}: external data location '{location}' resolves to {}, outside the model's folder {}",
            canon.display(),
            canon_base.display()
        )));
    }
    let (mut file, meta) = match crate::fsio::open_regular(&canon) {
        Ok(fm) => fm,
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => {
            return Err(ctx.invalid(format!(
                "{what}: external data location '{location}' is not a regular file"
            )))
        }
        Err(e) => return Err(ctx.io(&canon, format!("cannot open external data of {what}: {e}"))),
    };
    if !meta.is_file() {
        return Err(ctx.invalid(format!(
            "{what}: external data location '{location}' is not a regular file"
        )));
    }
    let size = meta.len();
    if offset > size {
        return Err(ctx.invalid(format!(
            "{what}: external data offset {offset} is beyond the end of '{location}' ({size} bytes)"
        )));
    }
    let length = length.unwrap_or(size - offset);
    match offset.checked_add(length) {
        Some(end) if end <= size => {}
        _ => {
            return Err(ctx.invalid(format!(
                "{what}: external data offset {offset} + length {length} is beyond the end of '{location}' ({size} bytes)"
            )))
        }
    }
    if length != expected {
        return Err(ctx.invalid(format!(
            "{what}: external data holds {length} bytes but its dims need {expected} bytes"
        )));
    }
    let len = usize::try_from(length).map_err(|_| {
        ctx.invalid(format!(
            "{what}: external data length {length} is too large"
        ))
    })?;
    let mut buf = vec![0u8; len];
    file.seek(SeekFrom::Start(offset))
        .and_then(|_| file.read_exact(&mut buf))
        .map_err(|e| ctx.io(&canon, format!("cannot read external data of {what}: {e}")))?;
    Ok(buf)
}

/// Encode `t` as a `TensorProto` of its declared dtype, data in `raw_data`.
pub(crate) fn tensor_to_proto(name: &str, t: &Tensor) -> Result<TensorProto, String> {
    let n = crate::engine::tensor::checked_numel(&t.shape).ok_or_else(|| {
        format!(
            "tensor '{name}' has shape {:?} whose size overflows",
            t.shape
        )
    })?;
    if t.data.len() != n {
        return Err(format!(
            "tensor '{name}' has shape {:?} ({n} elements) but holds {} values",
            t.shape,
            t.data.len()
        ));
    }
    let mismatch = || {
        format!(
            "tensor '{name}' is declared {} but its data is stored as {:?}",
            t.dtype,
            match &t.data {
                TensorData::F32(_) => "f32",
                TensorData::I64(_) => "i64",
                TensorData::Bool(_) => "bool",
            }
        )
    };
    let mut raw = Vec::with_capacity(n * onnx_elem_bytes(t.dtype) as usize);
    match (&t.data, t.dtype) {
        (TensorData::F32(v), DType::F32) => v.iter().for_each(|x| raw.extend(x.to_le_bytes())),
        (TensorData::F32(v), DType::F16) => v
            .iter()
            .for_each(|&x| raw.extend(f32_to_f16(x).to_le_bytes())),
        (TensorData::F32(v), DType::F64) => {
            v.iter().for_each(|&x| raw.extend((x as f64).to_le_bytes()))
        }
        (TensorData::Bool(v), DType::Bool) => raw.extend(v.iter().map(|&b| b as u8)),
        (TensorData::I64(v), dt) if dt.storage() == Storage::I64 => {
            for &x in v {
                let fits = match dt {
                    DType::I64 => true,
                    DType::I32 => i32::try_from(x).is_ok(),
                    DType::I16 => i16::try_from(x).is_ok(),
                    DType::I8 => i8::try_from(x).is_ok(),
                    DType::U8 => u8::try_from(x).is_ok(),
                    DType::U16 => u16::try_from(x).is_ok(),
                    DType::U32 => u32::try_from(x).is_ok(),
                    _ => x >= 0,
                };
                if !fits {
                    return Err(format!(
                        "tensor '{name}' is declared {dt} but holds the value {x}"
                    ));
                }
                let b = x.to_le_bytes();
                raw.extend_from_slice(&b[..onnx_elem_bytes(dt) as usize]);
            }
        }
        _ => return Err(mismatch()),
    }
    Ok(TensorProto {
        dims: t.shape.iter().map(|&d| d as i64).collect(),
        data_type: Some(t.dtype.onnx_code()),
        name: Some(name.to_string()),
        raw_data: Some(raw),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits::default()
    }

    fn decode(tp: &TensorProto) -> Result<Tensor, EngineError> {
        let l = limits();
        let mut ctx = LoadCtx::new("test.onnx", None, &l);
        tensor_from_proto(tp, "tensor 't'", "t", &mut ctx)
    }

    #[test]
    fn typed_fields_decode_for_every_dtype() {
        let mut tp = TensorProto {
            dims: vec![2],
            data_type: Some(10),
            int32_data: vec![0x3c00, 0xc100],
            ..Default::default()
        };
        let t = decode(&tp).unwrap();
        assert_eq!(t.dtype, DType::F16);
        assert_eq!(t.data, TensorData::F32(vec![1.0, -2.5]));

        tp.data_type = Some(3); // int8 from int32_data wraps like numpy
        tp.int32_data = vec![-5, 7];
        assert_eq!(decode(&tp).unwrap().data, TensorData::I64(vec![-5, 7]));

        tp.data_type = Some(9);
        tp.int32_data = vec![0, 3];
        assert_eq!(
            decode(&tp).unwrap().data,
            TensorData::Bool(vec![false, true])
        );

        tp.data_type = Some(11);
        tp.double_data = vec![0.5, 1e10];
        assert_eq!(decode(&tp).unwrap().data, TensorData::F32(vec![0.5, 1e10]));

        tp.data_type = Some(13);
        tp.uint64_data = vec![1, u64::MAX];
        let e = decode(&tp).unwrap_err().to_string();
        assert!(e.contains("18446744073709551615"), "{e}");
    }

    #[test]
    fn raw_data_decodes_little_endian() {
        let tp = TensorProto {
            dims: vec![1, 2],
            data_type: Some(6),
            raw_data: Some([(-3i32).to_le_bytes(), 9i32.to_le_bytes()].concat()),
            ..Default::default()
        };
        let t = decode(&tp).unwrap();
        assert_eq!((t.dtype, t.shape.clone()), (DType::I32, vec![1, 2]));
        assert_eq!(t.data, TensorData::I64(vec![-3, 9]));
    }

    #[test]
    fn scalar_and_empty_tensors() {
        let tp = TensorProto {
            data_type: Some(7),
            int64_data: vec![42],
            ..Default::default()
        };
        let t = decode(&tp).unwrap();
        assert!(t.shape.is_empty());
        assert_eq!(t.data, TensorData::I64(vec![42]));
        let tp = TensorProto {
            dims: vec![0, 3],
            data_type: Some(1),
            ..Default::default()
        };
        assert_eq!(decode(&tp).unwrap().data, TensorData::F32(vec![]));
    }

    #[test]
    fn declared_size_is_checked_before_allocating() {
        let tp = TensorProto {
            name: Some("big".into()),
            dims: vec![1_000_000, 1_000_000],
            data_type: Some(1),
            raw_data: Some(vec![0; 10]),
            ..Default::default()
        };
        let e = decode(&tp).unwrap_err();
        assert!(matches!(e, EngineError::MemoryLimit { .. }), "{e}");
        let small = Limits {
            max_tensor_bytes: 1 << 40,
            ..limits()
        };
        let mut ctx = LoadCtx::new("m.onnx", None, &small);
        let tp = TensorProto {
            dims: vec![1000],
            data_type: Some(1),
            raw_data: Some(vec![0; 10]),
            ..Default::default()
        };
        let e = tensor_from_proto(&tp, "tensor 'w'", "w", &mut ctx).unwrap_err();
        assert!(e.to_string().contains("raw_data holds 10 bytes"), "{e}");
    }

    #[test]
    fn overflowing_and_negative_dims_are_errors() {
        let mut tp = TensorProto {
            dims: vec![i64::MAX, i64::MAX, 0],
            data_type: Some(1),
            ..Default::default()
        };
        assert!(decode(&tp).unwrap_err().to_string().contains("overflows"));
        tp.dims = vec![2, -1];
        assert!(decode(&tp).unwrap_err().to_string().contains("-1"));
    }

    #[test]
    fn total_limit_adds_up_tensors() {
        let l = Limits {
            max_total_bytes: 12,
            ..limits()
        };
        let mut ctx = LoadCtx::new("m.onnx", None, &l);
        let tp = TensorProto {
            dims: vec![2],
            data_type: Some(1),
            float_data: vec![1.0, 2.0],
            ..Default::default()
        };
        tensor_from_proto(&tp, "a", "a", &mut ctx).unwrap();
        let e = tensor_from_proto(&tp, "b", "b", &mut ctx).unwrap_err();
        assert!(
            matches!(&e, EngineError::MemoryLimit { tensor, needed: 16, limit: 12 } if tensor == "b"),
            "{e}"
        );
    }

    #[test]
    fn encode_round_trips_every_dtype() {
        let l = limits();
        let cases = [
            Tensor::from_f32(vec![3], vec![1.5, -0.0, 1e-3]),
            Tensor::from_f32(vec![2], vec![1.0, -2.5]).with_dtype(DType::F16),
            Tensor::from_f32(vec![1], vec![0.25]).with_dtype(DType::F64),
            Tensor::from_i64(vec![2], vec![i64::MIN, 5]),
            Tensor::from_i64(vec![2], vec![-128, 127]).with_dtype(DType::I8),
            Tensor::from_i64(vec![1], vec![65535]).with_dtype(DType::U16),
            Tensor::from_i64(vec![1], vec![4_000_000_000]).with_dtype(DType::U32),
            Tensor::from_bool(vec![2, 1], vec![true, false]),
            Tensor::from_f32(vec![0, 4], vec![]),
        ];
        for t in cases {
            let tp = tensor_to_proto("x", &t).unwrap();
            let mut ctx = LoadCtx::new("x.pb", None, &l);
            let back = tensor_from_proto(&tp, "x", "x", &mut ctx).unwrap();
            assert_eq!(back, t);
        }
        let bad = Tensor::from_i64(vec![1], vec![300]).with_dtype(DType::I8);
        assert!(tensor_to_proto("x", &bad).unwrap_err().contains("300"));
    }
}

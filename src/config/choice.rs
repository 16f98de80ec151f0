//! Enumerated config values ("choices"): each is a Rust enum with ONE list
//! of accepted spellings, here, used by the config file (serde), the
//! command line (clap, through [`ChoiceParser`]) and boot. An unknown value
//! is one error naming the field, the value and every accepted spelling:
//! `source.pace = "fst": expected one of fast, realtime`.
//!
//! To add a value: add the variant to its enum (where the type lives) and
//! its spelling to the table below; the compiler then points at every
//! `match` that must handle it.
//!
//! Boot only; parsing allocates (error messages).

use crate::backend::Device;
use crate::cuda::lower::Precision;
use crate::frame::PixelFormat;
use crate::postprocess::DecoderKind;
use crate::preprocess::InputStyle;
use crate::source::v4l2::{Absent, CameraFormat, OnAdjust};
use crate::source::y4m::Pace;
use std::fmt::Write as _;

/// An enum that config, CLI and boot read from the same list of names.
pub trait Choice: Copy + Eq + Send + Sync + 'static {
    /// The config field, for messages (`source.pace`).
    const FIELD: &'static str;
    /// Every accepted spelling with its value; the first spelling of a
    /// value is its canonical name.
    const VALUES: &'static [(&'static str, Self)];

    /// The canonical spelling (what the config and `--help` show).
    fn name(self) -> &'static str {
        Self::VALUES
            .iter()
            .find(|(_, v)| *v == self)
            .map_or("?", |(n, _)| n)
    }

    /// `"a, b, c"`: every accepted spelling, for messages.
    fn accepted() -> String {
        accepted_of(Self::VALUES.iter().map(|(n, _)| *n))
    }

    /// Parses one spelling (exact match). Err: `"s": expected one of ...`
    /// (the caller adds the field or flag name in front).
    fn parse(s: &str) -> Result<Self, String> {
        Self::VALUES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("\"{s}\": expected one of {}", Self::accepted()))
    }
}

/// `"a, b, c"`.
pub fn accepted_of<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let mut s = String::new();
    for (i, n) in names.enumerate() {
        if i > 0 {
            s.push_str(", ");
        }
        let _ = write!(s, "{n}");
    }
    s
}

/// What every [`Choice`]'s `Deserialize` (from [`impl_choice!`]) does:
/// a string, one of the list, else `field = "value": expected one of ...`.
pub fn deserialize<'de, T: Choice, D: serde::Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    use serde::Deserialize;
    let s = String::deserialize(d)?;
    T::parse(&s).map_err(|e| serde::de::Error::custom(format!("{} = {e}", T::FIELD)))
}

/// Implements [`Choice`], `Deserialize` and `Display` for an enum from its
/// table of spellings.
macro_rules! impl_choice {
    ($t:ty, $field:literal, [$($name:literal => $v:expr),+ $(,)?]) => {
        impl Choice for $t {
            const FIELD: &'static str = $field;
            const VALUES: &'static [(&'static str, Self)] = &[$(($name, $v)),+];
        }
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                deserialize(d)
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(Choice::name(*self))
            }
        }
    };
}

// The one list per field. `source.format` of a synthetic camera names
// every format perceptd can read; of a V4L2 camera (`CameraFormat`, below)
// those with a V4L2 fourcc (`source::v4l2::fourcc`) and MJPEG.
impl_choice!(PixelFormat, "source.format", [
    "yuyv" => PixelFormat::Yuyv,
    "uyvy" => PixelFormat::Uyvy,
    "nv12" => PixelFormat::Nv12,
    "grey" => PixelFormat::Grey,
    "rgb24" => PixelFormat::Rgb24,
    "i420" => PixelFormat::I420,
    "i422" => PixelFormat::I422,
    "i444" => PixelFormat::I444,
]);
// A V4L2 camera's `source.format`: the raw formats with a fourcc, and
// MJPEG (decoded into the slot).
impl_choice!(CameraFormat, "source.format", [
    "yuyv" => CameraFormat::Raw(PixelFormat::Yuyv),
    "uyvy" => CameraFormat::Raw(PixelFormat::Uyvy),
    "nv12" => CameraFormat::Raw(PixelFormat::Nv12),
    "grey" => CameraFormat::Raw(PixelFormat::Grey),
    "rgb24" => CameraFormat::Raw(PixelFormat::Rgb24),
    "mjpeg" => CameraFormat::Mjpeg,
]);
impl_choice!(Pace, "source.pace", [
    "fast" => Pace::Fast,
    "realtime" => Pace::Realtime,
]);
impl_choice!(OnAdjust, "source.on_adjust", [
    "adapt" => OnAdjust::Adapt,
    "refuse" => OnAdjust::Refuse,
]);
impl_choice!(Absent, "source.absent", [
    "fail" => Absent::Fail,
    "wait" => Absent::Wait,
]);
impl_choice!(DecoderKind, "model.decoder", [
    "yolov8" => DecoderKind::YoloV8,
    "yolo11" => DecoderKind::YoloV8,
    "yolov5u" => DecoderKind::YoloV8,
    "yolov5" => DecoderKind::YoloV5,
    "end2end" => DecoderKind::End2End,
    "yolox" => DecoderKind::YoloX,
    "yolox-decoded" => DecoderKind::YoloXDecoded,
    "rtdetr" => DecoderKind::RtDetr,
]);
impl_choice!(InputStyle, "model.preprocess", [
    "letterbox" => InputStyle::Letterbox,
    "stretch" => InputStyle::Stretch,
    "yolox" => InputStyle::YoloX,
]);
impl_choice!(Device, "pipeline.device", [
    "auto" => Device::Auto,
    "cpu" => Device::Cpu,
    "cuda" => Device::Cuda,
]);
impl_choice!(Precision, "pipeline.precision", [
    "fp32" => Precision::Fp32,
    "fp16" => Precision::Fp16,
]);

/// A clap value parser for any [`Choice`]: `--help` lists the accepted
/// spellings and a bad value is one line, `--pace "fst": expected one of
/// fast, realtime` (clap adds `error: ` and exits 2).
#[derive(Debug, Clone, Copy)]
pub struct ChoiceParser<T>(std::marker::PhantomData<T>);

impl<T> ChoiceParser<T> {
    pub fn new() -> Self {
        ChoiceParser(std::marker::PhantomData)
    }
}

impl<T> Default for ChoiceParser<T> {
    fn default() -> Self {
        ChoiceParser::new()
    }
}

impl<T: Choice> clap::builder::TypedValueParser for ChoiceParser<T> {
    type Value = T;

    fn parse_ref(
        &self,
        _cmd: &clap::Command,
        arg: Option<&clap::Arg>,
        value: &std::ffi::OsStr,
    ) -> Result<T, clap::Error> {
        let flag = arg
            .and_then(|a| a.get_long())
            .map_or_else(|| T::FIELD.to_string(), |l| format!("--{l}"));
        let s = value.to_string_lossy();
        T::parse(&s).map_err(|e| {
            clap::Error::raw(
                clap::error::ErrorKind::InvalidValue,
                format!("{flag} {e}\n"),
            )
        })
    }

    fn possible_values(
        &self,
    ) -> Option<Box<dyn Iterator<Item = clap::builder::PossibleValue> + '_>> {
        Some(Box::new(
            T::VALUES
                .iter()
                .map(|(n, _)| clap::builder::PossibleValue::new(*n)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip<T: Choice + std::fmt::Debug>() {
        for (n, v) in T::VALUES {
            assert_eq!(T::parse(n), Ok(*v), "{n}");
            assert_eq!(T::parse(v.name()), Ok(*v));
        }
    }

    #[test]
    fn every_spelling_parses_and_names_round_trip() {
        roundtrip::<PixelFormat>();
        roundtrip::<CameraFormat>();
        roundtrip::<Pace>();
        roundtrip::<OnAdjust>();
        roundtrip::<Absent>();
        roundtrip::<DecoderKind>();
        roundtrip::<Device>();
        roundtrip::<Precision>();
        assert_eq!(DecoderKind::YoloV8.name(), "yolov8");
    }

    #[test]
    fn unknown_value_lists_every_spelling() {
        assert_eq!(
            Pace::parse("fst").unwrap_err(),
            "\"fst\": expected one of fast, realtime"
        );
        assert_eq!(
            DecoderKind::parse("yolov9").unwrap_err(),
            "\"yolov9\": expected one of yolov8, yolo11, yolov5u, yolov5, end2end, yolox, \
             yolox-decoded, rtdetr"
        );
    }

    #[test]
    fn clap_parser_names_the_flag() {
        use clap::builder::TypedValueParser;
        let cmd = clap::Command::new("t");
        let arg = clap::Arg::new("device").long("device");
        let p = ChoiceParser::<Device>::new();
        let ok = p.parse_ref(&cmd, Some(&arg), std::ffi::OsStr::new("cpu"));
        assert_eq!(ok.unwrap(), Device::Cpu);
        let e = p
            .parse_ref(&cmd, Some(&arg), std::ffi::OsStr::new("gpu"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--device \"gpu\": expected one of auto, cpu, cuda"),
            "{e}"
        );
        let names: Vec<String> = p
            .possible_values()
            .unwrap()
            .map(|v| v.get_name().to_string())
            .collect();
        assert_eq!(names, ["auto", "cpu", "cuda"]);
    }
}

//! Typed access to a node's `AttributeProto`s: each getter checks the
//! attribute's type and range and reports a bad value as
//! [`EngineError::Node`] naming the node, the op and the value.
//!
//! Boot only (main thread); allocates.

use super::proto::{attribute_proto::AttributeType, AttributeProto, TensorProto};
use crate::engine::error::EngineError;

pub(crate) struct Attrs<'a> {
    node: &'a str,
    op: &'a str,
    list: &'a [AttributeProto],
}

/// The attribute's type: the declared one, or (IR < 0.0.2, no `type`) the
/// one implied by the field that is set.
fn kind(a: &AttributeProto) -> AttributeType {
    if let Some(t) = a.r#type.filter(|&t| t != 0) {
        return AttributeType::try_from(t).unwrap_or(AttributeType::Undefined);
    }
    if a.f.is_some() {
        AttributeType::Float
    } else if a.i.is_some() {
        AttributeType::Int
    } else if a.s.is_some() {
        AttributeType::String
    } else if a.t.is_some() {
        AttributeType::Tensor
    } else if a.g.is_some() {
        AttributeType::Graph
    } else if a.sparse_tensor.is_some() {
        AttributeType::SparseTensor
    } else if !a.floats.is_empty() {
        AttributeType::Floats
    } else if !a.ints.is_empty() {
        AttributeType::Ints
    } else if !a.strings.is_empty() {
        AttributeType::Strings
    } else if !a.tensors.is_empty() {
        AttributeType::Tensors
    } else {
        AttributeType::Undefined
    }
}

fn list_string<T: std::fmt::Debug>(v: &[T]) -> String {
    const MAX: usize = 8;
    if v.len() <= MAX {
        format!("{v:?}")
    } else {
        let head: Vec<String> = v[..MAX].iter().map(|x| format!("{x:?}")).collect();
        format!("[{}, ... ({} values)]", head.join(", "), v.len())
    }
}

/// `STRING "abc"`, `INTS [1, 2]`, ... for error messages.
fn describe(a: &AttributeProto) -> String {
    let k = kind(a);
    let v = match k {
        AttributeType::Float => format!("{}", a.f.unwrap_or(0.0)),
        AttributeType::Int => format!("{}", a.i.unwrap_or(0)),
        AttributeType::String => format!(
            "{:?}",
            String::from_utf8_lossy(a.s.as_deref().unwrap_or(&[]))
        ),
        AttributeType::Floats => list_string(&a.floats),
        AttributeType::Ints => list_string(&a.ints),
        AttributeType::Strings => list_string(
            &a.strings
                .iter()
                .map(|s| String::from_utf8_lossy(s).into_owned())
                .collect::<Vec<_>>(),
        ),
        _ => String::new(),
    };
    if v.is_empty() {
        k.as_str_name().to_string()
    } else {
        format!("{} {v}", k.as_str_name())
    }
}

impl<'a> Attrs<'a> {
    /// Checks names: present, unique, and no function-attribute references
    /// (only valid inside a FunctionProto).
    pub fn new(
        node: &'a str,
        op: &'a str,
        list: &'a [AttributeProto],
    ) -> Result<Self, EngineError> {
        let attrs = Attrs { node, op, list };
        let mut seen = std::collections::HashSet::with_capacity(list.len());
        for (i, a) in list.iter().enumerate() {
            let name = a.name.as_deref().unwrap_or("");
            if name.is_empty() {
                return Err(attrs.err(format!("attribute #{i} has no name")));
            }
            if !seen.insert(name) {
                return Err(attrs.err(format!("attribute '{name}' is given twice")));
            }
            if a.ref_attr_name.as_deref().is_some_and(|r| !r.is_empty()) {
                return Err(attrs.err(format!(
                    "attribute '{name}' refers to a function attribute, which is only valid inside a function"
                )));
            }
        }
        Ok(attrs)
    }

    pub fn err(&self, msg: impl Into<String>) -> EngineError {
        EngineError::node(self.node, self.op, msg)
    }

    pub fn node(&self) -> &'a str {
        self.node
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    fn get(&self, name: &str) -> Option<&'a AttributeProto> {
        self.list.iter().find(|a| a.name.as_deref() == Some(name))
    }

    /// The attribute if present, after checking it has type `want`.
    fn typed(
        &self,
        name: &str,
        want: AttributeType,
    ) -> Result<Option<&'a AttributeProto>, EngineError> {
        match self.get(name) {
            None => Ok(None),
            Some(a) if kind(a) == want => Ok(Some(a)),
            Some(a) => Err(self.err(format!(
                "attribute '{name}' must be {} but is {}",
                want.as_str_name(),
                describe(a)
            ))),
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, EngineError> {
        Ok(self
            .typed(name, AttributeType::Int)?
            .map(|a| a.i.unwrap_or(0)))
    }

    pub fn int_or(&self, name: &str, default: i64) -> Result<i64, EngineError> {
        Ok(self.int(name)?.unwrap_or(default))
    }

    /// An int attribute that must be 0 or 1.
    pub fn bool_or(&self, name: &str, default: bool) -> Result<bool, EngineError> {
        match self.int(name)? {
            None => Ok(default),
            Some(0) => Ok(false),
            Some(1) => Ok(true),
            Some(v) => Err(self.err(format!("attribute '{name}' must be 0 or 1 but is {v}"))),
        }
    }

    pub fn float(&self, name: &str) -> Result<Option<f32>, EngineError> {
        Ok(self
            .typed(name, AttributeType::Float)?
            .map(|a| a.f.unwrap_or(0.0)))
    }

    pub fn float_or(&self, name: &str, default: f32) -> Result<f32, EngineError> {
        Ok(self.float(name)?.unwrap_or(default))
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, EngineError> {
        Ok(self
            .typed(name, AttributeType::Ints)?
            .map(|a| a.ints.clone()))
    }

    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, EngineError> {
        Ok(self
            .typed(name, AttributeType::Floats)?
            .map(|a| a.floats.clone()))
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, EngineError> {
        match self.typed(name, AttributeType::String)? {
            None => Ok(None),
            Some(a) => String::from_utf8(a.s.clone().unwrap_or_default())
                .map(Some)
                .map_err(|_| self.err(format!("attribute '{name}' is not valid UTF-8"))),
        }
    }

    pub fn tensor(&self, name: &str) -> Result<Option<&'a TensorProto>, EngineError> {
        Ok(self
            .typed(name, AttributeType::Tensor)?
            .and_then(|a| a.t.as_ref()))
    }

    /// Ints that must all be `>= min`, as sizes (kernel_shape, strides, ...).
    pub fn sizes(&self, name: &str, min: i64) -> Result<Option<Vec<usize>>, EngineError> {
        let Some(v) = self.ints(name)? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(v.len());
        for (i, &x) in v.iter().enumerate() {
            if x < min {
                return Err(self.err(format!(
                    "attribute '{name}' is {}: value {x} at index {i} must be >= {min}",
                    list_string(&v)
                )));
            }
            out.push(usize::try_from(x).map_err(|_| {
                self.err(format!(
                    "attribute '{name}': value {x} at index {i} is too large"
                ))
            })?);
        }
        Ok(Some(out))
    }

    /// A string attribute that must be one of `choices` (`(text, value)`).
    pub fn choice<T: Copy>(
        &self,
        name: &str,
        default: T,
        choices: &[(&str, T)],
    ) -> Result<T, EngineError> {
        let Some(s) = self.string(name)? else {
            return Ok(default);
        };
        choices
            .iter()
            .find(|(c, _)| *c == s)
            .map(|&(_, v)| v)
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(c, _)| *c).collect();
                self.err(format!(
                    "attribute '{name}' is \"{s}\", expected one of {}",
                    names.join(", ")
                ))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int_attr(name: &str, v: i64) -> AttributeProto {
        AttributeProto {
            name: Some(name.into()),
            r#type: Some(AttributeType::Int as i32),
            i: Some(v),
            ..Default::default()
        }
    }

    #[test]
    fn wrong_type_names_node_attribute_and_value() {
        let list = [AttributeProto {
            name: Some("axis".into()),
            r#type: Some(AttributeType::String as i32),
            s: Some(b"abc".to_vec()),
            ..Default::default()
        }];
        let a = Attrs::new("n1", "Concat", &list).unwrap();
        let e = a.int("axis").unwrap_err().to_string();
        assert_eq!(
            e,
            "node 'n1' (Concat): attribute 'axis' must be INT but is STRING \"abc\""
        );
    }

    #[test]
    fn untyped_attribute_infers_its_type() {
        let list = [AttributeProto {
            name: Some("alpha".into()),
            f: Some(0.5),
            ..Default::default()
        }];
        let a = Attrs::new("n", "Elu", &list).unwrap();
        assert_eq!(a.float_or("alpha", 1.0).unwrap(), 0.5);
        assert_eq!(a.float_or("beta", 1.0).unwrap(), 1.0);
    }

    #[test]
    fn sizes_and_bools_are_range_checked() {
        let list = [
            AttributeProto {
                name: Some("kernel_shape".into()),
                r#type: Some(AttributeType::Ints as i32),
                ints: vec![3, -3],
                ..Default::default()
            },
            int_attr("ceil_mode", 2),
        ];
        let a = Attrs::new("p", "MaxPool", &list).unwrap();
        let e = a.sizes("kernel_shape", 1).unwrap_err().to_string();
        assert!(e.contains("[3, -3]") && e.contains("-3 at index 1"), "{e}");
        let e = a.bool_or("ceil_mode", false).unwrap_err().to_string();
        assert!(e.contains("0 or 1 but is 2"), "{e}");
    }

    #[test]
    fn duplicate_attributes_are_rejected() {
        let list = [int_attr("axis", 1), int_attr("axis", 2)];
        assert!(Attrs::new("n", "Concat", &list).is_err());
    }
}

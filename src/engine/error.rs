//! The engine's error type. Every variant names the offending file, node,
//! tensor or value so that one line tells the user what to fix.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum EngineError {
    #[error("{path}: {msg}")]
    Io { path: String, msg: String },

    #[error("{path}: not a valid ONNX model: {msg}")]
    Decode { path: String, msg: String },

    /// The model is well-formed protobuf but violates ONNX rules or our limits.
    #[error("{path}: invalid model: {msg}")]
    InvalidModel { path: String, msg: String },

    /// Every unsupported op with the nodes that use it, not just the first.
    #[error("unsupported ops in model: {}", .list.iter().map(|(op, nodes)| format!("{op} (nodes: {})", nodes.join(", "))).collect::<Vec<_>>().join("; "))]
    Unsupported { list: Vec<(String, Vec<String>)> },

    /// A node whose attributes or input shapes are invalid or unsupported.
    #[error("node '{node}' ({op}): {msg}")]
    Node {
        node: String,
        op: String,
        msg: String,
    },

    #[error("input '{name}': {msg}")]
    Input { name: String, msg: String },

    #[error(
        "model needs {needed} bytes of memory but the limit is {limit} bytes (tensor '{tensor}')"
    )]
    MemoryLimit {
        tensor: String,
        needed: u128,
        limit: u128,
    },

    /// The planned model's host memory is over the budget it was given
    /// (checked before the arena is allocated).
    #[error("the planned model needs {} MiB (arena {} MiB, scratch {} MiB, weights {} MiB), over the {} MiB it may use", mib(arena + scratch + constants), mib(*arena), mib(*scratch), mib(*constants), mib(*limit))]
    PlanLimit {
        arena: u64,
        scratch: u64,
        constants: u64,
        limit: u64,
    },

    #[error("{0}")]
    Other(String),
}

/// Bytes as MiB, rounded up (for messages).
fn mib(b: u64) -> u64 {
    b.div_ceil(1 << 20)
}

impl EngineError {
    pub fn node(node: &str, op: &str, msg: impl Into<String>) -> EngineError {
        EngineError::Node {
            node: node.to_string(),
            op: op.to_string(),
            msg: msg.into(),
        }
    }
}

/// Error from an op implementation before it knows which node it is
/// working on; the caller attaches the node name.
#[derive(Debug, Error)]
#[error("{0}")]
pub struct OpError(pub String);

impl OpError {
    pub fn new(msg: impl Into<String>) -> OpError {
        OpError(msg.into())
    }
}

pub type OpResult<T> = Result<T, OpError>;

/// `return Err(OpError)` with a formatted message.
#[macro_export]
macro_rules! op_bail {
    ($($arg:tt)*) => { return Err($crate::engine::error::OpError(format!($($arg)*))) };
}

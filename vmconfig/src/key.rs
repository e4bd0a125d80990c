//! Key paths (`kernel.memory_regions[1]`) and the problems the checks report about
//! them. Callers add the file (and, on the host, line and column) when they show one.
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

/// A path to a value inside a TOML file, shown as `kernel.memory_regions[1]`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Seg>);

/// One step of a [`KeyPath`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

impl KeyPath {
    /// The path of a top-level key or table.
    pub fn new(key: &str) -> Self {
        KeyPath(vec![Seg::Key(key.to_string())])
    }

    /// This path extended by a key.
    pub fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_string()));
        KeyPath(segs)
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        KeyPath(segs)
    }

    pub fn segs(&self) -> &[Seg] {
        &self.0
    }

    pub fn from_segs(segs: Vec<Seg>) -> Self {
        KeyPath(segs)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One problem found in a VM config.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    /// The key the problem is about; empty for whole-file problems.
    pub key: KeyPath,
    pub message: String,
    /// Byte offset in the text, when the problem comes from the parser.
    pub offset: Option<usize>,
}

impl fmt::Display for Problem {
    /// `key: message`, or just the message for whole-file problems.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        write!(f, "{}", self.message)
    }
}

/// The problems of one config, in the order they were found.
#[derive(Clone, Debug, Default)]
pub struct Problems {
    pub items: Vec<Problem>,
}

impl Problems {
    pub fn error(&mut self, key: &KeyPath, message: impl Into<String>) {
        self.push(Severity::Error, key, message.into());
    }

    pub fn warning(&mut self, key: &KeyPath, message: impl Into<String>) {
        self.push(Severity::Warning, key, message.into());
    }

    fn push(&mut self, severity: Severity, key: &KeyPath, message: String) {
        let p = Problem {
            severity,
            key: key.clone(),
            message,
            offset: None,
        };
        if !self.items.contains(&p) {
            self.items.push(p);
        }
    }

    pub fn errors(&self) -> impl Iterator<Item = &Problem> {
        self.items.iter().filter(|p| p.severity == Severity::Error)
    }

    pub fn error_count(&self) -> usize {
        self.errors().count()
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }
}

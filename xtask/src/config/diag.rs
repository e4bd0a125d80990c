//! Diagnostics: every problem found in a config names the file, the key and the reason.
//!
//! Checks never stop at the first problem: they push [`Diagnostic`]s into a [`Report`],
//! and the caller shows all of them at once.
use std::fmt;

pub use vmconfig::{KeyPath, Seg, Severity};

/// One problem in one file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file as shown to the user (relative to the repository when inside it).
    pub file: String,
    /// 1-based line and column, when known.
    pub line_col: Option<(usize, usize)>,
    /// The key the problem is about; empty for whole-file problems.
    pub key: KeyPath,
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{kind}: {}", self.file)?;
        if let Some((line, col)) = self.line_col {
            write!(f, ":{line}:{col}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// All diagnostics of one validation run.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub items: Vec<Diagnostic>,
}

impl Report {
    pub fn push(&mut self, diag: Diagnostic) {
        if !self.items.contains(&diag) {
            self.items.push(diag);
        }
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items.iter().filter(|d| d.severity == Severity::Error)
    }

    pub fn warnings(&self) -> impl Iterator<Item = &Diagnostic> {
        self.items
            .iter()
            .filter(|d| d.severity == Severity::Warning)
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    pub fn error_count(&self) -> usize {
        self.errors().count()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in self.errors().chain(self.warnings()) {
            writeln!(f, "{d}")?;
        }
        Ok(())
    }
}

/// The error returned when validation found problems: the full report.
#[derive(Debug)]
pub struct ConfigError(pub Report);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let n = self.0.error_count();
        write!(
            f,
            "{n} configuration error{} found; nothing was built",
            if n == 1 { "" } else { "s" }
        )
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_path_display() {
        let p = KeyPath::new("kernel").key("memory_regions").index(1);
        assert_eq!(p.to_string(), "kernel.memory_regions[1]");
        assert_eq!(KeyPath::default().to_string(), "");
    }

    #[test]
    fn diagnostic_display_with_and_without_location() {
        let mut d = Diagnostic {
            severity: Severity::Error,
            file: "configs/vms/a.toml".into(),
            line_col: Some((3, 7)),
            key: KeyPath::new("base").key("id"),
            message: "duplicate VM id 1".into(),
        };
        assert_eq!(
            d.to_string(),
            "error: configs/vms/a.toml:3:7: base.id: duplicate VM id 1"
        );
        d.line_col = None;
        d.key = KeyPath::default();
        d.severity = Severity::Warning;
        assert_eq!(
            d.to_string(),
            "warning: configs/vms/a.toml: duplicate VM id 1"
        );
    }

    #[test]
    fn report_deduplicates() {
        let d = Diagnostic {
            severity: Severity::Error,
            file: "f".into(),
            line_col: None,
            key: KeyPath::default(),
            message: "m".into(),
        };
        let mut r = Report::default();
        r.push(d.clone());
        r.push(d);
        assert_eq!(r.error_count(), 1);
    }
}

//! Reading TOML into spanned raw structs and reporting what is wrong in it, for every
//! part of a fleet file: the fleet itself ([`crate::config`]), the driver settings
//! (`rollcall-drivers`) and the notify settings (`rollcall-notify`). Each reads the same
//! text into its own `#[derive(Deserialize)]` structs with [`Spanned`] fields and reports
//! problems through a [`Checker`], so every error has the same
//! `file:line:col: field: message` form and a parse error names its field the same way.

use crate::error::{ConfigError, ConfigErrors, Errors, SourceFile};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::ops::Range;

pub use toml::Spanned;

/// A string with its byte range in the file.
pub type S = Spanned<String>;

/// Parse the whole of `src` into `T`; a syntax or type error becomes the file's one
/// error, at its line and column and naming its field.
pub fn parse<T: DeserializeOwned>(src: &SourceFile) -> Result<T, ConfigErrors> {
    toml::from_str(&src.text).map_err(|e| parse_error(src, &e))
}

/// The errors for a TOML parse of `src` that failed with `e`.
pub fn parse_error(src: &SourceFile, e: &toml::de::Error) -> ConfigErrors {
    let msg = e.message().trim().to_string();
    let err = match e.span() {
        Some(span) => {
            let field = field_path_at(&src.text, span.start);
            ConfigError::at(src, span, field, msg)
        }
        None => ConfigError::file(&src.name, "", msg),
    };
    ConfigErrors {
        file: src.name.clone(),
        errors: vec![err],
    }
}

/// Best-effort field path (`cluster[2].load`) for a byte offset in TOML text,
/// used to name the field in parse errors.
pub fn field_path_at(text: &str, offset: usize) -> String {
    let offset = offset.min(text.len());
    let mut table = String::new();
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut pos = 0;
    let mut key = String::new();
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        let end = pos + line.len();
        if let Some(name) = trimmed
            .strip_prefix("[[")
            .and_then(|r| r.split("]]").next())
        {
            let name = name.trim().to_string();
            let c = counts.entry(name.clone()).or_insert(0);
            table = format!("{name}[{c}]");
            *c += 1;
            key.clear();
        } else if let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_string();
            key.clear();
        } else if let Some((k, _)) = trimmed.split_once('=')
            && !trimmed.starts_with('#')
        {
            key = k.trim().trim_matches('"').to_string();
        }
        if offset < end || end == text.len() {
            break;
        }
        pos = end;
    }
    match (table.is_empty(), key.is_empty()) {
        (true, true) => "(top level)".into(),
        (true, false) => key,
        (false, true) => table,
        (false, false) => format!("{table}.{key}"),
    }
}

/// The errors found in one file, each at a span of it; all of them are reported at once.
pub struct Checker<'a> {
    pub src: &'a SourceFile,
    pub errs: Errors,
}

impl<'a> Checker<'a> {
    pub fn new(src: &'a SourceFile) -> Self {
        Checker {
            src,
            errs: Errors::default(),
        }
    }

    /// An error at `span`, about `field`.
    pub fn err(&mut self, span: Range<usize>, field: impl Into<String>, msg: impl Into<String>) {
        self.errs.push(ConfigError::at(self.src, span, field, msg));
    }

    /// An error at `span`, about `field`, with a hint on what to write instead.
    pub fn err_help(
        &mut self,
        span: Range<usize>,
        field: impl Into<String>,
        msg: impl Into<String>,
        help: impl Into<String>,
    ) {
        let e = ConfigError::at(self.src, span, field, msg).with_help(help);
        self.errs.push(e);
    }

    /// A duration (`90s`, `1h30m`, `PT1H`); when it does not parse, an error with `help`.
    pub fn duration(&mut self, s: &S, field: &str, help: &str) -> Option<i64> {
        match rollcall_core::parse_duration(s.get_ref()) {
            Ok(d) => Some(d),
            Err(m) => {
                self.err_help(s.span(), field, m, help);
                None
            }
        }
    }

    /// A TCP port (1-65535).
    pub fn port(&mut self, p: &Spanned<i64>, field: &str) -> Option<u16> {
        match u16::try_from(*p.get_ref()) {
            Ok(v) if v > 0 => Some(v),
            _ => {
                let msg = format!("{} is not a TCP port (1-65535)", p.get_ref());
                self.err(p.span(), field, msg);
                None
            }
        }
    }

    /// `value` when no error was found, else every error (capped) for the file.
    pub fn finish<T>(self, value: T) -> Result<T, ConfigErrors> {
        self.errs.into_result(&self.src.name, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    struct Doc {
        #[serde(default)]
        cluster: Vec<Table>,
    }

    #[derive(Debug, Deserialize)]
    struct Table {
        port: Option<Spanned<i64>>,
        every: Option<S>,
    }

    #[test]
    fn a_type_error_is_one_error_at_its_line_naming_the_field() {
        let src = SourceFile::new("f.toml", "[[cluster]]\n\n[[cluster]]\nport = \"x\"\n");
        let errs = parse::<Doc>(&src).unwrap_err();
        assert_eq!(errs.file, "f.toml");
        assert_eq!(errs.errors.len(), 1);
        let e = &errs.errors[0];
        assert_eq!((e.line, e.field.as_str()), (Some(4), "cluster[1].port"));
    }

    #[test]
    fn checker_reports_every_bad_port_and_duration_at_its_span() {
        let text = "[[cluster]]\nport = 0\nevery = \"soon\"\n[[cluster]]\nport = 70000\nevery = \"5m\"\n[[cluster]]\nport = 6379\n";
        let src = SourceFile::new("f.toml", text);
        let doc: Doc = parse(&src).unwrap();
        let mut c = Checker::new(&src);
        let ports: Vec<Option<u16>> = doc
            .cluster
            .iter()
            .map(|t| c.port(t.port.as_ref().unwrap(), "port"))
            .collect();
        let every: Vec<Option<i64>> = doc
            .cluster
            .iter()
            .filter_map(|t| t.every.as_ref())
            .map(|s| c.duration(s, "every", "write 5m"))
            .collect();
        assert_eq!(ports, [None, None, Some(6379)]);
        assert_eq!(every, [None, Some(300)]);
        let errs = c.finish(()).unwrap_err().errors;
        let got: Vec<(Option<usize>, &str, Option<&str>)> = errs
            .iter()
            .map(|e| (e.line, e.message.as_str(), e.help.as_deref()))
            .collect();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], (Some(2), "0 is not a TCP port (1-65535)", None));
        assert_eq!(got[1], (Some(5), "70000 is not a TCP port (1-65535)", None));
        assert_eq!((got[2].0, got[2].2), (Some(3), Some("write 5m")));
        assert!(
            got[2].1.starts_with("invalid duration `soon`"),
            "{}",
            got[2].1
        );
    }

    #[test]
    fn a_checker_with_no_error_gives_the_value() {
        let src = SourceFile::new("f.toml", "");
        assert_eq!(Checker::new(&src).finish(7).unwrap(), 7);
    }
}

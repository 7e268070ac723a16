//! Host import from Ansible inventories (INI and YAML) and CSV files.
//! (stub: being written)

use crate::error::{ConfigError, SourceFile};

/// One host read from an inventory or CSV file.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedHost {
    pub id: String,
    pub address: Option<String>,
    pub region: Option<String>,
    pub zone: Option<String>,
    pub provider: Option<String>,
    pub tags: Vec<String>,
    /// Per-host duration override, seconds.
    pub duration: Option<i64>,
    /// 1-based line where the host is defined in its file.
    pub line: usize,
}

pub fn parse_csv(src: &SourceFile) -> Result<Vec<ImportedHost>, Vec<ConfigError>> {
    Err(vec![ConfigError::file(&src.name, "", "csv import not implemented yet")])
}

pub fn parse_ansible(src: &SourceFile) -> Result<Vec<ImportedHost>, Vec<ConfigError>> {
    Err(vec![ConfigError::file(&src.name, "", "ansible import not implemented yet")])
}

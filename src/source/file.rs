//! File mode: `--policy` and `--budgets`, re-read when their contents change. A bad new
//! file keeps the last good state in force; the error is logged and counted.

use super::Shutdown;
use crate::index::Index;
use crate::load::{self, LoadError};
use crate::webhook::Shared;
use crate::webhook::metrics::SourceLabel;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct FileSource {
    pub policy: PathBuf,
    pub budgets: PathBuf,
    fingerprint: Option<Vec<u8>>,
}

impl FileSource {
    pub fn new(policy: PathBuf, budgets: PathBuf) -> Self {
        FileSource {
            policy,
            budgets,
            fingerprint: None,
        }
    }

    /// Hash of every file's name and content: changes when any file does, including a
    /// symlink swapped under the same name.
    fn fingerprint(&self) -> Result<Vec<u8>, LoadError> {
        let mut hash = Sha256::new();
        let mut files = load::yaml_files(&self.policy)?;
        files.push(self.budgets.clone());
        for file in files {
            let bytes = std::fs::read(&file).map_err(|e| LoadError {
                file: file.clone(),
                document: None,
                object: None,
                message: e.to_string(),
            })?;
            hash.update(file.to_string_lossy().as_bytes());
            hash.update((bytes.len() as u64).to_le_bytes());
            hash.update(&bytes);
        }
        Ok(hash.finalize().to_vec())
    }

    /// The new state when the files changed and load cleanly; `Ok(None)` when unchanged.
    pub fn reload(&mut self) -> Result<Option<Index>, LoadError> {
        let fingerprint = self.fingerprint()?;
        if self.fingerprint.as_ref() == Some(&fingerprint) {
            return Ok(None);
        }
        let (index, notes) = load::load_state(&self.policy, &self.budgets)?;
        for note in notes {
            tracing::info!("{note}");
        }
        self.fingerprint = Some(fingerprint);
        Ok(Some(index))
    }
}

/// Polls the files every `interval` until shutdown, publishing each good new state.
pub async fn watch(
    mut source: FileSource,
    shared: Arc<Shared>,
    interval: Duration,
    shutdown: Shutdown,
) {
    let mut last_error: Option<String> = None;
    let stop = super::stopped(shutdown);
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = &mut stop => return,
        }
        match source.reload() {
            Ok(Some(index)) => {
                tracing::info!(policy = %source.policy.display(), budgets = %source.budgets.display(), "reloaded policy and budgets");
                shared.publish(index);
                last_error = None;
            }
            Ok(None) => {}
            Err(e) => {
                let message = e.to_string();
                // Log a broken file once, not every interval.
                if last_error.as_ref() != Some(&message) {
                    tracing::error!(error = %message, "reload failed; the last good state stays in force");
                    shared
                        .metrics
                        .reload_errors
                        .get_or_create(&SourceLabel { source: "state" })
                        .inc();
                    last_error = Some(message);
                }
            }
        }
    }
}

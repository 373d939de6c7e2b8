//! The demo's log lines go to a file in its folder, not between the lines
//! of the story it prints.
//!
//! Logging starts before the folder exists (the folder is cleared and made
//! by the demo itself), so the writer holds early lines in memory (at most
//! [`EARLY_LIMIT`] bytes) and writes them to the file once [`DemoLog::open`]
//! names it; every later line goes straight to the file.

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;

/// Bytes of log kept before the file is open; beyond it, early lines are
/// dropped (the demo's set-up logs a few kilobytes).
pub const EARLY_LIMIT: usize = 1 << 20;

enum Sink {
    Early(Vec<u8>),
    File(std::fs::File),
}

/// A `tracing` writer that ends in a file named once the demo's folder is
/// ready. Clones share the one sink.
#[derive(Clone)]
pub struct DemoLog {
    sink: Arc<Mutex<Sink>>,
}

impl Default for DemoLog {
    fn default() -> Self {
        Self::new()
    }
}

impl DemoLog {
    pub fn new() -> Self {
        Self {
            sink: Arc::new(Mutex::new(Sink::Early(Vec::new()))),
        }
    }

    /// Creates (or truncates) `path`, writes the lines held so far to it,
    /// and sends every later line there.
    pub fn open(&self, path: &Path) -> std::io::Result<()> {
        let mut file = std::fs::File::create(path)?;
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        if let Sink::Early(early) = &*sink {
            file.write_all(early)?;
        }
        *sink = Sink::File(file);
        Ok(())
    }
}

/// One write to the shared sink.
pub struct DemoLogWriter {
    sink: Arc<Mutex<Sink>>,
}

impl Write for DemoLogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *sink {
            Sink::Early(early) => {
                if early.len() + buf.len() <= EARLY_LIMIT {
                    early.extend_from_slice(buf);
                }
                Ok(buf.len())
            }
            Sink::File(file) => file.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let mut sink = self.sink.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *sink {
            Sink::Early(_) => Ok(()),
            Sink::File(file) => file.flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for DemoLog {
    type Writer = DemoLogWriter;

    fn make_writer(&'a self) -> Self::Writer {
        DemoLogWriter {
            sink: self.sink.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn early_lines_reach_the_file_once_it_is_named_and_later_ones_follow() {
        let dir = tempfile::tempdir().unwrap();
        let log = DemoLog::new();
        log.make_writer().write_all(b"before\n").unwrap();
        let path = dir.path().join("demo.log");
        log.open(&path).unwrap();
        log.make_writer().write_all(b"after\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "before\nafter\n");
    }

    #[test]
    fn early_lines_are_bounded() {
        let log = DemoLog::new();
        let line = vec![b'x'; 1000];
        for _ in 0..(EARLY_LIMIT / 1000 + 10) {
            log.make_writer().write_all(&line).unwrap();
        }
        let Sink::Early(early) = &*log.sink.lock().unwrap() else {
            panic!("no file was named");
        };
        assert!(early.len() <= EARLY_LIMIT);
    }
}

//! Config files: the hub's (`kith_hub::config::HubConfig::load`) and the
//! agent's (`kith_agent::AgentConfig::parse`), from arbitrary TOML text.
//!
//! The first byte picks which; the rest is the file. The hub's loader reads
//! a file, so the text is written to one scratch file per process.
//!
//! Checks: no panic, including in the `expect` of `HubConfig::to_toml`; an
//! accepted config written back out loads again, to the same config (the
//! agent's compared field by field, the hub's by its TOML); an accepted
//! hub config gives settings.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use kith_agent::AgentConfig;
use kith_hub::config::HubConfig;
use libfuzzer_sys::fuzz_target;

fn scratch() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("kith-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch folder");
        dir.join("kith-hub.toml")
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, bytes)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if which % 2 == 0 {
        let path = scratch();
        std::fs::write(path, text).expect("writing the scratch config");
        let Ok(config) = HubConfig::load(path) else {
            return;
        };
        config.settings().expect("a loaded config has settings");
        let written = config.to_toml();
        std::fs::write(path, &written).expect("writing the scratch config");
        let again = HubConfig::load(path).expect("a loaded config, written out, loads again");
        assert_eq!(
            again.to_toml(),
            written,
            "hub config changed on a second load"
        );
    } else {
        let Ok(config) = AgentConfig::parse(text) else {
            return;
        };
        let written = toml::to_string_pretty(&config).expect("an agent config serialises");
        let again =
            AgentConfig::parse(&written).expect("a parsed config, written out, parses again");
        assert_eq!(again, config, "agent config changed through TOML");
    }
});

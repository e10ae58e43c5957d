//! Command line, config file and logging conventions shared by every aquatic
//! binary (the three daemons and their load testers).
//!
//! - no arguments: run on the built-in default config;
//! - `-c FILE`: read a TOML config; every field is optional, an unknown field,
//!   a wrong type or an unreadable file is one line on stderr and exit code 1;
//! - `-p`: print the default config with a comment above every field;
//! - `-P`: print the effective config after loading;
//! - `-h` help, `-V` version.
//!
//! The commented default config is a hand-written template per binary;
//! [`check_default_template`] proves in each binary's tests that it parses to
//! exactly `Default::default()`, names every field, and comments every field.
//!
//! Not here: anything a daemon does after its config is loaded.

#![forbid(unsafe_code)]
use std::ffi::OsString;
use std::fmt::Debug;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// A binary's config: serde both ways, defaults for every field, and a
/// commented TOML template of those defaults.
pub trait Config: Default + Serialize + DeserializeOwned {
    /// The default config as TOML, with a comment above every field saying
    /// what it does and its unit. Printed by `-p`.
    const DEFAULT_TEMPLATE: &'static str;

    /// Log level to set up before running; `None` leaves logging off (load
    /// testers print their own results).
    fn log_level(&self) -> Option<LogLevel>;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Off,
    Error,
    #[default]
    Warn,
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    fn filter(self) -> log::LevelFilter {
        match self {
            LogLevel::Off => log::LevelFilter::Off,
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

/// A boolean flag a binary accepts besides the common ones.
pub struct ExtraFlag {
    pub long: &'static str,
    pub help: &'static str,
}

/// What the command line asked for, after the common flags were handled.
#[derive(Debug, Default)]
pub struct Options {
    pub config_file: Option<PathBuf>,
    /// The extra flags (by `long` name) that were given.
    pub flags: Vec<&'static str>,
}

impl Options {
    pub fn flag(&self, long: &str) -> bool {
        self.flags.contains(&long)
    }
}

/// A daemon's `main.rs`: mimalloc as the global allocator and a `main` that
/// [`run_app`]s the crate's `config::Config` and `run`, e.g.
/// `aquatic_cli_helpers::daemon_main!(aquatic_udp, "UDP BitTorrent tracker");`
/// (the crate must depend on `mimalloc`).
#[macro_export]
macro_rules! daemon_main {
    ($krate:ident, $about:expr) => {
        #[global_allocator]
        static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

        fn main() {
            $crate::run_app::<$krate::config::Config, _>(
                stringify!($krate),
                env!("CARGO_PKG_VERSION"),
                $about,
                &[],
                |config, _options| $krate::run(config),
            )
        }
    };
}

/// Parse the command line, load the config and set up logging, then call
/// `run`. Never returns: exits 0 on success (or with the code `run` gives),
/// 1 with a one-line message on any error. `name` and `version` are the
/// binary's, for `-h` and `-V`.
pub fn run_app<C, F>(name: &str, version: &str, about: &str, extra: &[ExtraFlag], run: F) -> !
where
    C: Config,
    F: FnOnce(C, Options) -> anyhow::Result<i32>,
{
    let code = match run_app_inner(
        name,
        version,
        about,
        extra,
        std::env::args_os().skip(1),
        run,
    ) {
        Ok(code) => code,
        Err(err) => {
            // One line: the error and its causes, joined with ": ".
            let _ = writeln!(std::io::stderr(), "{name}: error: {err:#}");
            1
        }
    };
    std::process::exit(code)
}

fn run_app_inner<C, F, I>(
    name: &str,
    version: &str,
    about: &str,
    extra: &[ExtraFlag],
    args: I,
    run: F,
) -> anyhow::Result<i32>
where
    C: Config,
    F: FnOnce(C, Options) -> anyhow::Result<i32>,
    I: IntoIterator<Item = OsString>,
{
    let mut options = Options::default();
    let mut print_effective = false;
    let mut parser = lexopt::Parser::from_args(args);
    while let Some(arg) = parser.next()? {
        use lexopt::Arg::{Long, Short};
        match arg {
            Short('c') | Long("config") => {
                options.config_file = Some(PathBuf::from(parser.value()?));
            }
            Short('p') | Long("print-default-config") => {
                print!("{}", C::DEFAULT_TEMPLATE);
                return Ok(0);
            }
            Short('P') | Long("print-config") => print_effective = true,
            Short('h') | Long("help") => {
                print!("{}", help_text(name, about, extra));
                return Ok(0);
            }
            Short('V') | Long("version") => {
                println!("{name} {version}");
                return Ok(0);
            }
            Long(flag) => match extra.iter().find(|f| f.long == flag) {
                Some(f) => options.flags.push(f.long),
                None => anyhow::bail!("unknown option --{flag} (see {name} -h)"),
            },
            other => anyhow::bail!("{} (see {name} -h)", other.unexpected()),
        }
    }

    let config: C = match &options.config_file {
        Some(path) => load_config_file(path)?,
        None => C::default(),
    };
    if print_effective {
        print!(
            "{}",
            toml::to_string_pretty(&config).context("cannot print config")?
        );
        return Ok(0);
    }
    if let Some(level) = config.log_level() {
        init_logging(level)?;
    }
    run(config, options)
}

fn help_text(name: &str, about: &str, extra: &[ExtraFlag]) -> String {
    let mut s = format!(
        "{name}: {about}\n\nUsage: {name} [OPTIONS]\n\nOptions:\n  -c, --config FILE           read config from TOML FILE (defaults for missing fields)\n  -p, --print-default-config  print the default config, with comments, and exit\n  -P, --print-config          print the effective config and exit\n  -h, --help                  print this help\n  -V, --version               print the version\n"
    );
    for flag in extra {
        s.push_str(&format!("      --{:<22}{}\n", flag.long, flag.help));
    }
    s
}

/// Read and parse a TOML config file. Errors name the file, the line and,
/// through the line's text, the field.
pub fn load_config_file<C: DeserializeOwned>(path: &Path) -> anyhow::Result<C> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("config file {}: cannot read", path.display()))?;
    parse_config(&text).with_context(|| format!("config file {}", path.display()))
}

/// Parse config text; the error is one line with the line number and text.
pub fn parse_config<C: DeserializeOwned>(text: &str) -> anyhow::Result<C> {
    toml::from_str(text).map_err(|err| {
        let message = err.message().replace('\n', " ");
        match err.span() {
            Some(span) => {
                let before = text.get(..span.start).unwrap_or(text);
                let line_number = before.matches('\n').count() + 1;
                let line = text.lines().nth(line_number - 1).unwrap_or("").trim();
                anyhow::anyhow!("line {line_number} ({line}): {message}")
            }
            None => anyhow::anyhow!("{message}"),
        }
    })
}

/// Log to stderr (the journal, under systemd) at the given level.
pub fn init_logging(level: LogLevel) -> anyhow::Result<()> {
    let config = simplelog::ConfigBuilder::new()
        .set_time_format_rfc3339()
        .set_thread_level(log::LevelFilter::Error)
        .set_target_level(log::LevelFilter::Off)
        // rustls warns about every odd client (e.g. libtorrent sending an
        // IP address as SNI): one log line per connection would let any
        // client flood the journal. TLS failures are logged by the daemon.
        .add_filter_ignore_str("rustls")
        .build();
    simplelog::WriteLogger::init(level.filter(), config, std::io::stderr())
        .context("cannot set up logging")
}

/// For each binary's tests: the template parses to exactly the default
/// config, contains every field the default config serializes, and has a
/// comment line above every field.
///
/// Panics on the first failed check: this is an assertion for tests, on a
/// compile-time template, never run by a daemon.
#[allow(clippy::panic, clippy::expect_used)] // a test assertion: panicking is how it reports
pub fn check_default_template<C: Config + PartialEq + Debug>() {
    let template = C::DEFAULT_TEMPLATE;
    let parsed: C = parse_config(template).unwrap_or_else(|e| panic!("template: {e:#}"));
    assert_eq!(parsed, C::default(), "template values differ from Default");
    let from_template: toml::Value = toml::from_str(template).expect("template is TOML");
    let from_default = toml::Value::try_from(C::default()).expect("default serializes");
    assert_eq!(
        from_template, from_default,
        "template does not name exactly the fields of the default config"
    );
    let mut previous = "";
    for (i, line) in template.lines().enumerate() {
        let t = line.trim();
        if !(t.is_empty() || t.starts_with('#') || t.starts_with('[')) {
            assert!(
                previous.starts_with('#'),
                "template line {} ({t}) has no comment above it",
                i + 1
            );
        }
        previous = t;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Example {
        workers: usize,
        log_level: LogLevel,
        inner: Inner,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Inner {
        address: String,
    }

    impl Default for Example {
        fn default() -> Self {
            Self {
                workers: 1,
                log_level: LogLevel::Warn,
                inner: Inner::default(),
            }
        }
    }

    impl Default for Inner {
        fn default() -> Self {
            Self {
                address: "0.0.0.0:3000".into(),
            }
        }
    }

    impl Config for Example {
        const DEFAULT_TEMPLATE: &'static str = "# Number of workers.\nworkers = 1\n# Log level.\nlog_level = \"warn\"\n\n[inner]\n# Address.\naddress = \"0.0.0.0:3000\"\n";
        fn log_level(&self) -> Option<LogLevel> {
            None
        }
    }

    #[test]
    fn template_matches_default() {
        check_default_template::<Example>();
    }

    #[test]
    fn missing_fields_take_defaults() {
        let c: Example = parse_config("[inner]\n").unwrap();
        assert_eq!(c, Example::default());
    }

    #[test]
    fn unknown_field_error_names_field_and_line() {
        let err = parse_config::<Example>("workers = 2\nwrokers = 3\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("line 2"), "{msg}");
        assert!(msg.contains("wrokers"), "{msg}");
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn wrong_type_error_names_field() {
        let err = parse_config::<Example>("[inner]\naddress = 5\n").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("address"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn cli_flags() {
        let run = |args: &[&str]| {
            run_app_inner::<Example, _, _>(
                "x",
                "0",
                "about",
                &[ExtraFlag {
                    long: "json",
                    help: "json",
                }],
                args.iter().map(OsString::from),
                |_c, o| Ok(if o.flag("json") { 7 } else { 3 }),
            )
        };
        assert_eq!(run(&[]).unwrap(), 3);
        assert_eq!(run(&["--json"]).unwrap(), 7);
        assert_eq!(run(&["-p"]).unwrap(), 0);
        assert!(run(&["--nope"]).is_err());
        assert!(run(&["-c", "/nonexistent/file.toml"]).is_err());
    }
}

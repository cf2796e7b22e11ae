//! The `linehub` command line. Parses arguments and calls the library; nothing else lives here.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use linehub::config;
use linehub::daemon::Daemon;
use linehub::settings::Settings;
use linehub::store::StoreError;
use tokio::net::TcpListener;

/// mimalloc: webhook ingest allocates per request on every worker thread, where glibc's malloc
/// spent a tenth of the CPU time in the ingest benchmark.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// linehub connects LINE Official Accounts to a HubSpot portal.
#[derive(Parser)]
#[command(name = "linehub", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: webhooks in, HubSpot contacts out, scheduled pipelines. Reloads the
    /// config and pipelines on SIGHUP and when their files change. One daemon per store: a
    /// second one on the same store refuses to start.
    Run {
        /// The config file.
        #[arg(long, short, default_value = "config.yaml", env = "LINEHUB_CONFIG")]
        config: PathBuf,
    },
    /// Validate the config and its pipelines; print every problem as file:line:column: field: message.
    Check {
        /// The config file.
        #[arg(long, short, default_value = "config.yaml", env = "LINEHUB_CONFIG")]
        config: PathBuf,
    },
    /// Run LINE and HubSpot simulators on one listener (for trying linehub and for tests).
    #[cfg(feature = "sandbox")]
    Sandbox {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8099")]
        listen: std::net::SocketAddr,
    },
    /// Play a short scenario on the built-in sandbox and show what happens in HubSpot.
    #[cfg(feature = "sandbox")]
    Demo {
        /// Address linehub listens on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Address the sandbox listens on.
        #[arg(long, default_value = "127.0.0.1:8099")]
        sandbox_listen: std::net::SocketAddr,
        /// Exit after the scenario instead of serving until Ctrl-C.
        #[arg(long)]
        once: bool,
    },
    /// Inspect and retry HubSpot writes that are waiting or were given up on.
    Outbox {
        #[command(subcommand)]
        command: OutboxCommand,
    },
    /// List the newest LINE sends HubSpot asked for (workflow pushes), with their state.
    Sends {
        /// The config file (for the store path).
        #[arg(long, short, default_value = "config.yaml", env = "LINEHUB_CONFIG")]
        config: PathBuf,
        /// How many to show.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// Write the QR code of an account's login link (its LIFF URL when LIFF is configured), to
    /// print or put on a page. PNG by default.
    Qr {
        /// The config file.
        #[arg(long, short, default_value = "config.yaml", env = "LINEHUB_CONFIG")]
        config: PathBuf,
        /// Write SVG instead of PNG.
        #[arg(long)]
        svg: bool,
        /// Width and height in pixels (64-2048).
        #[arg(long, default_value_t = linehub::qr::DEFAULT_SIZE)]
        size: u32,
        /// The file to write; default linehub-ACCOUNT-login.png (or .svg) here; `-` for stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// The account's id.
        account: String,
    },
    /// ID linking through LINE Login: links an operator must look at.
    Login {
        #[command(subcommand)]
        command: LoginCommand,
    },
    /// List pipelines and run one now.
    Pipeline {
        #[command(subcommand)]
        command: PipelineCommand,
    },
}

#[derive(Subcommand)]
enum PipelineCommand {
    /// List the pipelines with their schedule, next run and last run.
    List {
        /// The config file (its pipelines_dir holds the pipelines).
        #[arg(long, short, default_value = "config.yaml", env = "LINEHUB_CONFIG")]
        config: PathBuf,
    },
    /// Run a pipeline now (resuming its interrupted run, if any). HubSpot writes it queues are
    /// sent by the running daemon.
    Run {
        /// The config file (its pipelines_dir holds the pipelines).
        #[arg(long, short, default_value = "config.yaml", env = "LINEHUB_CONFIG")]
        config: PathBuf,
        /// Print what it would write or send, and change nothing.
        #[arg(long)]
        dry_run: bool,
        /// The pipeline's name (see `linehub pipeline list`).
        name: String,
    },
}

#[derive(Subcommand)]
enum LoginCommand {
    /// List logins that could not be linked as asked: two contacts with real emails
    /// (`conflict`), and users who are friends but unknown to the account, the sign of a LINE
    /// Login channel under another provider (`provider`).
    Problems {
        /// The config file (for the store path).
        #[arg(long, short, default_value = "config.yaml", env = "LINEHUB_CONFIG")]
        config: PathBuf,
        /// How many to show, newest first.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum OutboxCommand {
    /// List dead-lettered writes (or every queued write with --all).
    List {
        /// The config file (for the store path).
        #[arg(long, short, default_value = "config.yaml", env = "LINEHUB_CONFIG")]
        config: PathBuf,
        /// Show writes still being retried too.
        #[arg(long)]
        all: bool,
    },
    /// Put dead-lettered writes back in the queue (all of them, or the ids given).
    Retry {
        /// The config file (for the store path).
        #[arg(long, short, default_value = "config.yaml", env = "LINEHUB_CONFIG")]
        config: PathBuf,
        /// Row ids from `linehub outbox list`; none means every dead row.
        ids: Vec<i64>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo tells its story on stdout; its logs only speak up for problems.
    #[cfg(feature = "sandbox")]
    let quiet = matches!(cli.command, Command::Demo { .. });
    #[cfg(not(feature = "sandbox"))]
    let quiet = false;
    init_logging(if quiet { "warn" } else { "info" });
    let result = match cli.command {
        Command::Check { config } => return check(&config),
        Command::Run { config } => runtime().and_then(|rt| rt.block_on(run(config))),
        #[cfg(feature = "sandbox")]
        Command::Sandbox { listen } => runtime().and_then(|rt| rt.block_on(sandbox(listen))),
        #[cfg(feature = "sandbox")]
        Command::Demo { listen, sandbox_listen, once } => runtime().and_then(|rt| {
            rt.block_on(linehub::demo::run(
                linehub::demo::DemoOptions { listen, sandbox_listen, once },
                shutdown_signal(),
            ))
        }),
        Command::Outbox { command } => runtime().and_then(|rt| rt.block_on(outbox(command))),
        Command::Sends { config, limit } => runtime().and_then(|rt| rt.block_on(sends(config, limit))),
        Command::Qr { config, svg, size, output, account } => qr(&config, &account, svg, size, output),
        Command::Login { command: LoginCommand::Problems { config, limit } } => {
            runtime().and_then(|rt| rt.block_on(login_problems(config, limit)))
        }
        Command::Pipeline { command } => match runtime().and_then(|rt| rt.block_on(pipeline(command))) {
            Ok(code) => return code,
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("linehub: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(default: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("LINEHUB_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

fn check(path: &std::path::Path) -> ExitCode {
    match Settings::load(path) {
        Ok(Settings { config: c, pipelines }) => {
            println!(
                "{}: ok ({} accounts, {} active, plan {}, {} pipelines)",
                path.display(),
                c.accounts.len(),
                c.active_accounts().count(),
                c.plan.name(),
                pipelines.len()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}

async fn run(path: PathBuf) -> anyhow::Result<()> {
    let settings = Settings::load(&path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    // One daemon per store; held until this function returns (or the process dies).
    let lock = linehub::store::DaemonLock::acquire(&settings.config.store.path)?;
    tracing::debug!(lock = %lock.path().display(), "store locked for this daemon");
    let listen = settings.config.server.listen;
    let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let daemon = Daemon::start(settings, listener).await?;
    let pipelines_dir = daemon.config().pipelines_dir.clone();
    let mut watcher = match config::watch::ConfigWatcher::start(&path, &pipelines_dir, Duration::from_millis(500)) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!(error = %e, "cannot watch the config files; reload with SIGHUP (systemctl reload linehub)");
            None
        }
    };
    let mut hangup = hangups();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let changed = async {
            match watcher.as_mut() {
                Some(w) => w.changed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut shutdown => break,
            Some(()) = hangup.recv() => tracing::info!("SIGHUP: reloading the config"),
            Some(paths) = changed => tracing::info!(?paths, "config files changed: reloading"),
        }
        // Success and failure are both logged by the daemon, problem by problem.
        let _ = daemon.reload().await;
    }
    tracing::info!("shutting down");
    let stopped = daemon.shutdown().await;
    drop(lock);
    stopped
}

/// One message per SIGHUP, as `systemctl reload` sends it (never, where there are no signals).
fn hangups() -> tokio::sync::mpsc::Receiver<()> {
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(mut hup) => {
            tokio::spawn(async move {
                while hup.recv().await.is_some() {
                    let _ = tx.try_send(());
                }
            });
        }
        Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP; reload by editing the files"),
    }
    #[cfg(not(unix))]
    drop(tx);
    rx
}

async fn pipeline(command: PipelineCommand) -> anyhow::Result<ExitCode> {
    let path = match &command {
        PipelineCommand::List { config } | PipelineCommand::Run { config, .. } => config,
    };
    let settings = Settings::load(path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    match command {
        PipelineCommand::List { .. } => {
            print!("{}", linehub::pipelines::cli::list(&settings.config, &settings.pipelines).await?);
            Ok(ExitCode::SUCCESS)
        }
        PipelineCommand::Run { name, dry_run, .. } => {
            let (report, queued) =
                linehub::pipelines::cli::run(settings.config.clone(), &settings.pipelines, &name, dry_run).await?;
            print!("{report}");
            if queued > 0 {
                println!("{queued} HubSpot write(s) are queued; the running daemon (`linehub run`) sends them");
            }
            Ok(if report.error.is_none() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}

#[cfg(feature = "sandbox")]
async fn sandbox(listen: std::net::SocketAddr) -> anyhow::Result<()> {
    use std::io::Write;
    let listener = TcpListener::bind(listen).await.with_context(|| format!("binding {listen}"))?;
    let cfg = linehub_sandbox::SandboxConfig::default();
    // A closed stdout (a supervisor that stopped reading) must not stop the sandbox.
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "linehub sandbox: LINE and HubSpot APIs on http://{listen}");
    let _ = writeln!(out, "  HubSpot token: {}", cfg.hubspot_token);
    let _ = writeln!(
        out,
        "  control: http://{listen}/_sandbox/health, /_sandbox/line/channels, /_sandbox/hubspot/contacts, /_sandbox/faults"
    );
    let _ = out.flush();
    drop(out);
    linehub_sandbox::serve(listener, cfg, shutdown_signal()).await.context("serving the sandbox")
}

async fn outbox(command: OutboxCommand) -> anyhow::Result<()> {
    let path = match &command {
        OutboxCommand::List { config, .. } | OutboxCommand::Retry { config, .. } => config,
    };
    let config = config::load(path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    let opening = || format!("opening the store at {}", config.store.path.display());
    match command {
        OutboxCommand::List { all, .. } => {
            // No store yet: nothing was ever queued, and listing creates nothing.
            let rows = match linehub::store::Store::open_read_only(&config.store.path) {
                Err(StoreError::Missing { .. }) => Vec::new(),
                store => store.with_context(opening)?.outbox_list_blocking(!all)?,
            };
            if rows.is_empty() {
                println!("{}", if all { "the outbox is empty" } else { "no dead-lettered writes" });
            }
            for r in rows {
                let when = chrono::DateTime::from_timestamp_millis(r.next_attempt_at).unwrap_or_default();
                println!(
                    "{:>8}  {:<6} {:<44} attempts={} next={} error={}",
                    r.id,
                    if r.dead { "dead" } else { "queued" },
                    r.key,
                    r.attempts,
                    when.format("%Y-%m-%dT%H:%M:%SZ"),
                    r.last_error.as_deref().unwrap_or("-")
                );
            }
        }
        OutboxCommand::Retry { ids, .. } => {
            let store = linehub::store::Store::open(&config.store.path).with_context(opening)?;
            let n = store.outbox_retry(ids, linehub::clock::system_now_ms()).await?;
            println!("{n} write(s) queued again");
        }
    }
    Ok(())
}

fn qr(path: &std::path::Path, account: &str, svg: bool, size: u32, output: Option<PathBuf>) -> anyhow::Result<()> {
    let config = config::load(path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    let (_, login) = linehub::login::login_of(&config, account)
        .map_err(|_| anyhow::anyhow!("account `{account}` is not active or has no `login:` block"))?;
    let urls = linehub::login::LoginUrls::new(&config.server.public_base_url, account, login);
    let size = linehub::qr::clamp_size(Some(size));
    let bytes = if svg {
        linehub::qr::svg(urls.qr_target(), size)?.into_bytes()
    } else {
        linehub::qr::png(urls.qr_target(), size)?
    };
    let output =
        output.unwrap_or_else(|| PathBuf::from(format!("linehub-{account}-login.{}", if svg { "svg" } else { "png" })));
    if output.as_os_str() == "-" {
        use std::io::Write;
        std::io::stdout().write_all(&bytes).context("writing the QR code to stdout")?;
    } else {
        std::fs::write(&output, &bytes).with_context(|| format!("writing {}", output.display()))?;
        eprintln!("{}: QR code of {}", output.display(), urls.qr_target());
    }
    Ok(())
}

async fn login_problems(path: PathBuf, limit: usize) -> anyhow::Result<()> {
    let config = config::load(&path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    let rows = match linehub::store::Store::open_read_only(&config.store.path) {
        Err(StoreError::Missing { .. }) => Vec::new(),
        store => {
            store
                .with_context(|| format!("opening the store at {}", config.store.path.display()))?
                .link_problems(limit)
                .await?
        }
    };
    if rows.is_empty() {
        println!("no login problems");
    }
    for p in rows {
        let at = chrono::DateTime::from_timestamp_millis(p.created_at).unwrap_or_default();
        println!(
            "{:>6}  {:<8} {} account={} user={} contact={} wanted={}  {}",
            p.id,
            p.kind,
            at.format("%Y-%m-%d %H:%M:%S"),
            p.account_id,
            p.user_id,
            p.contact_id.as_deref().unwrap_or("-"),
            p.other_contact_id.as_deref().unwrap_or("-"),
            p.detail
        );
    }
    Ok(())
}

async fn sends(path: PathBuf, limit: usize) -> anyhow::Result<()> {
    let config = config::load(&path).map_err(|e| anyhow::anyhow!("invalid config:\n{e}"))?;
    // No store yet: nothing was ever sent, and listing creates nothing.
    let rows = match linehub::store::Store::open_read_only(&config.store.path) {
        Err(StoreError::Missing { .. }) => Vec::new(),
        store => {
            store.with_context(|| format!("opening the store at {}", config.store.path.display()))?.sends(limit).await?
        }
    };
    if rows.is_empty() {
        println!("no sends yet");
    }
    for r in rows {
        println!(
            "{:>8}  {:<8} account={} contact={} attempts={} callback={} {}",
            r.id,
            r.state,
            r.account_id,
            r.contact_id,
            r.attempts,
            r.callback_id.as_deref().unwrap_or("-"),
            match (&r.request_id, &r.error) {
                (Some(id), _) => format!("request={id}"),
                (None, Some(e)) => format!("error={e}"),
                (None, None) => String::new(),
            }
        );
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM (systemd's stop).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

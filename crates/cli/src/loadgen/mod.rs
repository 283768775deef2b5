//! `vidscope loadgen`: realistic traffic against a running API so that every dashboard, alert
//! and trace view has something to show, bounded in time and in requests.
//!
//! Virtual viewers register (or sign in as the admin when registration is off), then loop over
//! weighted scenarios: watching a lesson (open, resume, range requests, player telemetry, a
//! progress save every `--progress-interval`, the page hidden at the end), browsing, signing
//! out and in, and a share of requests that must fail (unknown ids, path traversal, bad bodies,
//! unknown player events, unsatisfiable ranges, anonymous calls, wrong passwords). With admin
//! credentials one more task uploads the embedded sample lesson, a broken MP4 now and then (its
//! probe job is dead-lettered) and a text file (415). Every request is a CLIENT span whose
//! `traceparent` the API continues, so the service graph shows `vidscope-loadgen → vidscope-api`.

mod client;
mod sample;
mod scenarios;
mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use rand::Rng;
use reqwest::Url;

pub use stats::{RouteSummary, Summary};

use client::{Budget, Client, Exhausted};
use stats::Stats;

#[derive(Debug, Clone)]
pub struct Config {
    /// The API's base URL.
    pub target: Url,
    pub duration: Duration,
    /// Concurrent virtual viewers.
    pub users: usize,
    pub max_requests: u64,
    pub max_uploads: u64,
    /// Time between two uploads.
    pub upload_every: Duration,
    /// Time between two progress saves of a watching viewer (a player saves every 10 s).
    pub progress_interval: Duration,
    /// Share of scenarios that provoke an error on purpose.
    pub error_share: f64,
    /// Admin e-mail and password, for uploads.
    pub admin: Option<(String, String)>,
    /// How long to wait for `/readyz` before giving up.
    pub ready_timeout: Duration,
    /// Draw a progress bar (on a terminal) or print a status line every 10 s (otherwise).
    pub show_progress: bool,
}

impl Config {
    pub fn new(target: Url) -> Self {
        Self {
            target,
            duration: Duration::from_secs(30),
            users: 4,
            max_requests: 100_000,
            max_uploads: 10,
            upload_every: Duration::from_secs(15),
            progress_interval: Duration::from_secs(10),
            error_share: 0.05,
            admin: None,
            ready_timeout: Duration::from_secs(60),
            show_progress: true,
        }
    }
}

/// Why a run could not start. Errors during the run are counted, not returned.
#[derive(Debug, thiserror::Error)]
pub enum LoadgenError {
    #[error("{target} did not answer /readyz with 200 within {waited:?} (last: {last})")]
    NotReady {
        target: Url,
        waited: Duration,
        last: String,
    },
    #[error(
        "the admin sign-in was refused ({status}): check --admin-email and --admin-password \
         (VIDSCOPE_ADMIN_EMAIL / VIDSCOPE_ADMIN_PASSWORD)"
    )]
    AdminRefused { status: u16 },
    #[error(
        "no viewer session: registration answered {status} and no admin credentials were given \
         (set --admin-email/--admin-password or enable VIDSCOPE_REGISTRATION on the API)"
    )]
    NoSession { status: u16 },
    #[error(transparent)]
    Http(#[from] reqwest::Error),
}

/// Runs the load until the duration or the request budget is used up, or `stop` resolves
/// (requests in flight then finish), and returns what was sent and received.
pub async fn run(
    config: Config,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Summary, LoadgenError> {
    wait_ready(&config).await?;
    let started = Instant::now();
    let stats = Arc::new(Stats::default());
    let budget = Arc::new(Budget::new(config.duration, config.max_requests));
    let stopper = {
        let budget = budget.clone();
        tokio::spawn(async move {
            stop.await;
            budget.stop();
        })
    };
    let new_client = || Client::new(config.target.clone(), stats.clone(), budget.clone());
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();

    let admin = match &config.admin {
        Some(credentials) => {
            let c = new_client()?;
            sign_in_admin(&c, credentials).await?.then_some(c)
        }
        None => None,
    };
    let uploads = Arc::new(AtomicU64::new(0));
    let bad_logins = Arc::new(BadLoginBudget::new());

    let mut tasks = tokio::task::JoinSet::new();
    if let Some(c) = admin {
        let (cfg, uploads) = (config.clone(), uploads.clone());
        let run_id = run_id.clone();
        tasks.spawn(async move {
            let _ = uploader(&c, &cfg, &run_id, &uploads).await;
            Ok(())
        });
    }
    for i in 0..config.users {
        let client = new_client()?;
        let anonymous = new_client()?;
        let cfg = config.clone();
        let email = format!("loadgen-{run_id}-{i}@loadgen.example.com");
        let bad_logins = bad_logins.clone();
        tasks.spawn(async move { viewer(&client, &anonymous, &cfg, email, &bad_logins).await });
    }
    let reporter = config.show_progress.then(|| {
        tokio::spawn(report_progress(
            stats.clone(),
            budget.clone(),
            config.clone(),
        ))
    });

    let (mut first_error, mut failed_viewers) = (None, 0);
    while let Some(joined) = tasks.join_next().await {
        if let Ok(Err(e)) = joined {
            failed_viewers += 1;
            first_error.get_or_insert(e);
        }
    }
    stopper.abort();
    if let Some(r) = reporter {
        r.abort();
        let _ = r.await;
    }
    // No viewer got a session: the run measured nothing worth a summary.
    if let Some(e) = first_error
        && failed_viewers == config.users
    {
        return Err(e);
    }
    Ok(stats.summary(started.elapsed(), uploads.load(Ordering::Relaxed)))
}

async fn wait_ready(config: &Config) -> Result<(), LoadgenError> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?;
    let url = config.target.join("/readyz").expect("a static path joins");
    let started = Instant::now();
    loop {
        let last = match http.get(url.clone()).send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => format!("status {}", r.status()),
            Err(e) => format!("{e}"),
        };
        if started.elapsed() >= config.ready_timeout {
            return Err(LoadgenError::NotReady {
                target: config.target.clone(),
                waited: config.ready_timeout,
                last,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Wrong-password probes count against the client address's login budget (20 failures per
/// 5 minutes by default). One every 20 s stays under it, so the viewers' own sign-ins from
/// the same address are never throttled.
struct BadLoginBudget {
    last: std::sync::Mutex<Option<Instant>>,
}

impl BadLoginBudget {
    fn new() -> Self {
        Self {
            last: std::sync::Mutex::new(None),
        }
    }

    fn take(&self) -> bool {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if last.is_some_and(|t| t.elapsed() < Duration::from_secs(20)) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }
}

async fn uploader(
    client: &Client,
    config: &Config,
    run_id: &str,
    uploads: &AtomicU64,
) -> Result<(), Exhausted> {
    for n in 0..config.max_uploads {
        if scenarios::upload(client, run_id, n).await? {
            uploads.fetch_add(1, Ordering::Relaxed);
        }
        scenarios::pause(client, config.upload_every).await?;
    }
    Ok(())
}

/// Signs `client` in as the admin; `Ok(false)` when the run ended first.
async fn sign_in_admin(
    client: &Client,
    (email, password): &(String, String),
) -> Result<bool, LoadgenError> {
    match scenarios::login(client, email, password).await {
        Ok(200) => Ok(true),
        Ok(status) => Err(LoadgenError::AdminRefused { status }),
        Err(Exhausted) => Ok(false),
    }
}

/// A viewer registers its own account; where registration is off it uses the admin's.
async fn viewer(
    client: &Client,
    anonymous: &Client,
    config: &Config,
    email: String,
    bad_logins: &BadLoginBudget,
) -> Result<(), LoadgenError> {
    let password = format!("loadgen-{}", uuid::Uuid::new_v4().simple());
    let (email, password) = match scenarios::register(client, &email, &password).await {
        Err(Exhausted) => return Ok(()),
        Ok(201) => (email, password),
        Ok(status) => {
            let Some(admin) = &config.admin else {
                return Err(LoadgenError::NoSession { status });
            };
            if !sign_in_admin(client, admin).await? {
                return Ok(());
            }
            admin.clone()
        }
    };
    let _ = viewer_loop(client, anonymous, config, &email, &password, bad_logins).await;
    Ok(())
}

async fn viewer_loop(
    client: &Client,
    anonymous: &Client,
    config: &Config,
    email: &str,
    password: &str,
    bad_logins: &BadLoginBudget,
) -> Result<(), Exhausted> {
    // A lesson left half-way is the next one watched: the player then resumes it.
    let mut unfinished: Option<scenarios::Video> = None;
    loop {
        let videos = scenarios::list(client).await?;
        let watchable: Vec<_> = videos
            .iter()
            .filter(|v| v.status == "ready")
            .cloned()
            .collect();
        let roll: f64 = rand::rng().random();
        if roll < config.error_share {
            scenarios::provoke_error(client, anonymous, &videos, bad_logins.take()).await?;
        } else if roll < 0.55 && !watchable.is_empty() {
            let video = unfinished
                .take()
                .unwrap_or_else(|| watchable[rand::rng().random_range(0..watchable.len())].clone());
            let saves = rand::rng().random_range(2..=6);
            if !scenarios::watch(client, &video, config.progress_interval, saves).await? {
                unfinished = Some(video);
            }
        } else if roll < 0.92 {
            scenarios::browse(client, &videos).await?;
        } else {
            scenarios::relogin(client, email, password).await?;
        }
        // Think time between interactions.
        let think = Duration::from_millis(rand::rng().random_range(200..1_500));
        scenarios::pause(client, think).await?;
    }
}

async fn report_progress(stats: Arc<Stats>, budget: Arc<Budget>, config: Config) {
    let total = config.duration.as_secs().max(1);
    let bar = indicatif::ProgressBar::new(total);
    let tty = !bar.is_hidden();
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len}s {msg}",
        )
        .expect("a valid template"),
    );
    let started = Instant::now();
    let mut last_line = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let msg = format!(
            "{} requests, {} unexpected",
            budget.used(),
            stats.unexpected()
        );
        bar.set_position(started.elapsed().as_secs().min(total));
        bar.set_message(msg.clone());
        if !tty && last_line.elapsed() >= Duration::from_secs(10) {
            eprintln!(
                "loadgen: {:.0}/{}s {msg}",
                started.elapsed().as_secs_f64(),
                total
            );
            last_line = Instant::now();
        }
    }
}

/// Parses `--target`, naming the problem.
pub fn parse_target(s: &str) -> anyhow::Result<Url> {
    let url = Url::parse(s).with_context(|| format!("--target {s:?} is not a URL"))?;
    anyhow::ensure!(
        matches!(url.scheme(), "http" | "https"),
        "--target must be an http:// or https:// URL (got {s:?})"
    );
    anyhow::ensure!(
        url.username().is_empty() && url.password().is_none(),
        "--target must not carry credentials; use --admin-email/--admin-password"
    );
    Ok(url)
}

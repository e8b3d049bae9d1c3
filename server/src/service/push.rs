//! Safe hours and wake signals (docs/SAFETY.md; docs/WAKE.md).
//!
//! A device may register a push endpoint and weekly safe-hours windows in its own time zone.
//! When an envelope or event is stored for a device with no live stream on this replica, the
//! server sends a content-free wake signal (an empty POST with no identifying header), but
//! only inside one of its windows and at most once per `push_min_interval_secs`: a phone in
//! an abuser's hands must not light up outside the hours the survivor chose. Outside the
//! windows messages wait; [`tick_once`] wakes devices with something pending once a window
//! opens. Endpoint URLs never reach the log: they name the device at its push gateway.

use crate::app::AppState;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::service::Caller;
use crate::store::{PushRow, to_id};
use futures_util::StreamExt;
use quietline_proto::Id;
use quietline_proto::wire::{PushRegistration, SafeWindow};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

/// Longest endpoint URL accepted.
pub const MAX_ENDPOINT_LEN: usize = 512;
/// Farthest time zones from UTC (UTC-12:00 to UTC+14:00, with margin), in minutes.
pub const MAX_OFFSET_MINUTES: i32 = 840;
/// Most safe-hours windows per device (four a day).
pub const MAX_WINDOWS: usize = 28;
const MINUTES_PER_DAY: u16 = 24 * 60;
/// A gateway that does not answer quickly is not waited for; the next message or window
/// tries again.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
const SEND_TIMEOUT: Duration = Duration::from_secs(5);
/// How often [`run`] looks for windows that have opened.
const TICK_EVERY: Duration = Duration::from_secs(60);
/// Most registrations one tick looks at, and wakes it sends at once.
const TICK_BATCH: i64 = 1000;
const TICK_CONCURRENCY: usize = 16;

/// The HTTP client for wake signals: no redirects (a gateway cannot bounce the request to
/// another host), no proxy from the environment, short timeouts, no user agent, HTTPS only
/// unless `push_allow_insecure`, and host names resolved at send time by [`PublicOnly`], so a
/// name that points (or is re-pointed) at a private address is never connected to.
pub fn http_client(config: &Config) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .dns_resolver(std::sync::Arc::new(PublicOnly {
            allow_loopback: config.push_allow_insecure,
        }))
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(SEND_TIMEOUT)
        .https_only(!config.push_allow_insecure)
        .build()
}

/// Resolves push gateway names with the system resolver and keeps only addresses a wake
/// signal may go to ([`allowed_target`]); a name with none left fails to resolve. The
/// connection is made to the addresses checked here, so a second lookup cannot swap them.
struct PublicOnly {
    allow_loopback: bool,
}

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let allow_loopback = self.allow_loopback;
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let found = tokio::net::lookup_host((host.as_str(), 0)).await?;
            let allowed: Vec<std::net::SocketAddr> = found
                .filter(|a| allowed_target(a.ip(), allow_loopback))
                .collect();
            if allowed.is_empty() {
                return Err("the push endpoint resolves to no public address".into());
            }
            Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// Whether a wake signal may be sent to `ip`: a public address, or loopback when the operator
/// allowed insecure endpoints (tests and development). Never a private, shared, link-local,
/// site-local, unique-local, NAT64 or 6to4 address.
pub fn allowed_target(ip: IpAddr, allow_loopback: bool) -> bool {
    let loopback = match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    };
    is_public(ip) || (allow_loopback && loopback)
}

/// `PUT /v1/devices/me/push`: register or replace the caller's device's endpoint and safe
/// hours. Invalid input stores nothing.
pub async fn register(state: &AppState, caller: Caller, req: PushRegistration) -> Result<()> {
    let device = caller.device().ok_or_else(Error::forbidden)?;
    check_endpoint(&req.endpoint, state.config.push_allow_insecure)?;
    if !(-MAX_OFFSET_MINUTES..=MAX_OFFSET_MINUTES).contains(&req.utc_offset_minutes) {
        return Err(Error::bad_request());
    }
    check_windows(&req.safe_hours)?;
    let windows = serde_json::to_string(&req.safe_hours).map_err(Error::internal)?;
    state
        .store
        .put_push(
            &device.0,
            &req.endpoint,
            i64::from(req.utc_offset_minutes),
            &windows,
        )
        .await?;
    Ok(())
}

/// `DELETE /v1/devices/me/push`: forget the caller's device's endpoint. Idempotent.
pub async fn unregister(state: &AppState, caller: Caller) -> Result<()> {
    let device = caller.device().ok_or_else(Error::forbidden)?;
    state.store.delete_push(&device.0).await?;
    Ok(())
}

/// A plain HTTPS URL, without credentials, whose host is not an address on this machine or
/// its private network (the server must not be usable to probe its own neighbourhood).
/// With `allow_insecure` (tests and development), `http` and loopback hosts are accepted,
/// still no private ones. Host names are checked again when a wake is sent: the client
/// resolves them itself and connects only to allowed addresses ([`PublicOnly`]).
pub fn check_endpoint(endpoint: &str, allow_insecure: bool) -> Result<url::Url> {
    if endpoint.len() > MAX_ENDPOINT_LEN {
        return Err(Error::bad_request());
    }
    let url = url::Url::parse(endpoint).map_err(|_| Error::bad_request())?;
    match url.scheme() {
        "https" => {}
        "http" if allow_insecure => {}
        _ => return Err(Error::bad_request()),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(Error::bad_request());
    }
    let local = match url.host() {
        None => return Err(Error::bad_request()),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.');
            (name == "localhost" || name.ends_with(".localhost")) && !allow_insecure
        }
        Some(url::Host::Ipv4(ip)) => !allowed_target(IpAddr::V4(ip), allow_insecure),
        Some(url::Host::Ipv6(ip)) => !allowed_target(IpAddr::V6(ip), allow_insecure),
    };
    if local {
        return Err(Error::bad_request());
    }
    Ok(url)
}

fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(ip),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    let shared = a == 100 && (b & 0xc0) == 64; // 100.64.0.0/10, carrier-grade NAT
    let protocol = a == 192 && b == 0 && c == 0; // 192.0.0.0/24, IETF protocol assignments
    let benchmarking = a == 198 && (b & 0xfe) == 18; // 198.18.0.0/15
    let reserved = a >= 240; // 240.0.0.0/4
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || shared
        || protocol
        || benchmarking
        || reserved
        || a == 0)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    let unique_local = (s[0] & 0xfe00) == 0xfc00; // fc00::/7
    let link_local = (s[0] & 0xffc0) == 0xfe80; // fe80::/10
    let site_local = (s[0] & 0xffc0) == 0xfec0; // fec0::/10 (deprecated, still routed locally)
    // 64:ff9b::/96 and 64:ff9b:1::/48: NAT64, which reaches any IPv4 address, private too.
    let nat64 = s[0] == 0x64 && s[1] == 0xff9b && (s[2] == 1 || s[2..6] == [0, 0, 0, 0]);
    let six_to_four = s[0] == 0x2002; // 2002::/16 embeds an IPv4 address
    let teredo = s[0] == 0x2001 && s[1] == 0; // 2001::/32 embeds one too
    let documentation = s[0] == 0x2001 && s[1] == 0x0db8; // 2001:db8::/32
    let discard = s[0] == 0x100 && s[1..4] == [0, 0, 0]; // 100::/64
    let v4_compatible = s[..6] == [0, 0, 0, 0, 0, 0]; // ::/96, with :: and ::1
    !(ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || unique_local
        || link_local
        || site_local
        || nat64
        || six_to_four
        || teredo
        || documentation
        || discard
        || v4_compatible)
}

fn check_windows(windows: &[SafeWindow]) -> Result<()> {
    if windows.len() > MAX_WINDOWS {
        return Err(Error::bad_request());
    }
    let valid = |w: &SafeWindow| {
        w.day <= 6 && w.start_minute < w.end_minute && w.end_minute <= MINUTES_PER_DAY
    };
    if windows.iter().all(valid) {
        Ok(())
    } else {
        Err(Error::bad_request())
    }
}

/// Seconds left in the safe-hours window that contains `now` in the device's local time
/// (`now` plus its offset), or `None` outside every window.
pub fn window_left(windows: &[SafeWindow], utc_offset_minutes: i64, now: i64) -> Option<i64> {
    let local = now.saturating_add(utc_offset_minutes.saturating_mul(60));
    // 1970-01-01 was a Thursday; day 0 is Monday.
    let day = (local.div_euclid(86_400) + 3).rem_euclid(7);
    let second = local.rem_euclid(86_400);
    windows
        .iter()
        .filter(|w| i64::from(w.day) == day)
        .filter(|w| {
            i64::from(w.start_minute) * 60 <= second && second < i64::from(w.end_minute) * 60
        })
        .map(|w| i64::from(w.end_minute) * 60 - second)
        .max()
}

/// The wake signals running in the background, so shutdown (and tests) can wait until
/// every one started has been sent or given up, instead of guessing how long that takes.
#[derive(Debug, Default)]
pub struct WakeTasks {
    running: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    idle: std::sync::Arc<tokio::sync::Notify>,
}

/// Counts one running task; the count drops (and waiters wake) even if the task panics.
struct Running {
    running: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    idle: std::sync::Arc<tokio::sync::Notify>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if self
            .running
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel)
            == 1
        {
            self.idle.notify_waiters();
        }
    }
}

impl WakeTasks {
    /// Run `task` in the background, counted until it ends.
    pub fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        self.running
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let guard = Running {
            running: self.running.clone(),
            idle: self.idle.clone(),
        };
        tokio::spawn(async move {
            let _guard = guard;
            task.await;
        });
    }

    /// Resolves once no task is running (at once if none is).
    pub async fn idle(&self) {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            // Registered before the check, so a task ending in between still wakes us.
            notified.as_mut().enable();
            if self.running.load(std::sync::atomic::Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// Called right after an envelope or event is stored for `devices`: wake those that need
/// it, in a background task (tracked in `AppState::wake_tasks`), so the sender's answer
/// never waits on a push gateway.
pub fn stored_for(state: &AppState, devices: &[Id]) {
    let offline: Vec<Id> = devices
        .iter()
        .filter(|d| !state.hub.has_listeners(d))
        .copied()
        .collect();
    if offline.is_empty() {
        return;
    }
    let task_state = state.clone();
    state.wake_tasks.spawn(async move {
        let state = task_state;
        for device in offline {
            let woken = match state.store.push_registration(&device.0).await {
                Ok(Some(row)) => try_wake(&state, &row).await,
                Ok(None) => Ok(false),
                Err(e) => Err(e.into()),
            };
            if let Err(e) = woken {
                tracing::warn!(error = %e, "cannot decide on a wake signal");
            }
        }
    });
}

/// Wake every device that has something pending, whose window is open and whose rate limit
/// has expired; reset expired rate limits to 0. Returns how many wake signals were sent.
pub async fn tick_once(state: &AppState) -> Result<u64> {
    let now = state.now();
    state.store.clear_expired_wake_limits(now).await?;
    let due = state.store.push_due(now, TICK_BATCH).await?;
    let results: Vec<Result<bool>> = futures_util::stream::iter(due)
        .map(|row| {
            let state = state.clone();
            async move { try_wake(&state, &row).await }
        })
        .buffer_unordered(TICK_CONCURRENCY)
        .collect()
        .await;
    let mut sent = 0;
    for r in results {
        match r {
            Ok(true) => sent += 1,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot decide on a wake signal"),
        }
    }
    Ok(sent)
}

/// Run [`tick_once`] every minute until the process stops.
pub async fn run(state: AppState) {
    let mut tick = tokio::time::interval(TICK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match tick_once(&state).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(wakes = n, "wake signals sent as windows opened"),
            Err(e) => tracing::warn!(error = %e, "wake tick failed"),
        }
    }
}

/// Send one wake signal for `row` if the device has no live stream here, its window is open
/// and its rate limit has expired (taken atomically, so replicas never double up). Returns
/// whether one was sent.
async fn try_wake(state: &AppState, row: &PushRow) -> Result<bool> {
    let now = state.now();
    if row.next_wake_at > now {
        return Ok(false);
    }
    let device = to_id(&row.device_id)?;
    if state.hub.has_listeners(&device) {
        return Ok(false);
    }
    let windows: Vec<SafeWindow> =
        serde_json::from_str(&row.safe_hours).map_err(Error::internal)?;
    let Some(left) = window_left(&windows, row.utc_offset_minutes, now) else {
        return Ok(false);
    };
    // Checked again at send time: the operator may have turned `push_allow_insecure` off.
    let Ok(url) = check_endpoint(&row.endpoint, state.config.push_allow_insecure) else {
        return Ok(false);
    };
    // Rounded up to the hour like every stored expiry: the row never gives back the exact
    // time a wake went out.
    let next = crate::clock::expiry(now, state.config.push_min_interval_secs);
    if !state
        .store
        .take_wake_slot(&row.device_id, now, next)
        .await?
    {
        return Ok(false);
    }
    send_wake(state, device, url, left).await;
    Ok(true)
}

/// POST nothing to `url`. The only header beyond what HTTP needs is `TTL`, the seconds left
/// in the window, so a Web Push gateway drops the signal rather than deliver it after the
/// window has closed. Failures are logged without the URL.
async fn send_wake(state: &AppState, device: Id, url: url::Url, ttl: i64) {
    let result = state
        .http
        .post(url)
        .header("TTL", ttl.max(1).to_string())
        .body(Vec::<u8>::new())
        .send()
        .await;
    match result {
        Ok(resp) if resp.status().is_success() => {
            metrics::counter!("quietline_wake_signals_sent_total").increment(1);
        }
        Ok(resp) => {
            metrics::counter!("quietline_wake_signals_failed_total").increment(1);
            let status = resp.status().as_u16();
            tracing::warn!(status, "push gateway refused a wake signal");
            // 404 and 410: the gateway has forgotten the endpoint (RFC 8030 §7.3), so keep it
            // no longer either.
            if (status == 404 || status == 410)
                && let Err(e) = state.store.delete_push(&device.0).await
            {
                tracing::warn!(error = %e, "cannot delete a dead push endpoint");
            }
        }
        Err(e) => {
            metrics::counter!("quietline_wake_signals_failed_total").increment(1);
            tracing::warn!(error = %e.without_url(), "wake signal not sent");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wake_tasks_are_idle_only_when_every_task_has_ended() {
        use futures_util::FutureExt;
        let tasks = WakeTasks::default();
        assert!(
            tasks.idle().now_or_never().is_some(),
            "idle with nothing running"
        );
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn(async move {
            let _ = rx.await;
        });
        // A task that panics still counts as ended.
        let (ptx, prx) = tokio::sync::oneshot::channel::<()>();
        tasks.spawn(async move {
            let _ = prx.await;
            panic!("a failing wake task");
        });
        assert!(tasks.idle().now_or_never().is_none());
        let waiting = tokio::spawn({
            let running = tasks.running.clone();
            let idle = tasks.idle.clone();
            async move { WakeTasks { running, idle }.idle().await }
        });
        tx.send(()).unwrap();
        ptx.send(()).unwrap();
        waiting.await.unwrap();
        assert!(tasks.idle().now_or_never().is_some());
    }

    /// 2024-01-01 00:00:00 UTC, a Monday.
    const MONDAY: i64 = 1_704_067_200;

    fn w(day: u8, start_minute: u16, end_minute: u16) -> SafeWindow {
        SafeWindow {
            day,
            start_minute,
            end_minute,
        }
    }

    #[test]
    fn window_math_uses_the_devices_local_day_and_minute() {
        let windows = [w(0, 9 * 60, 10 * 60)];
        // Monday 09:30 UTC, offset 0: inside, 30 minutes left.
        assert_eq!(
            window_left(&windows, 0, MONDAY + 9 * 3600 + 1800),
            Some(1800)
        );
        // Monday 10:00 UTC: the end is exclusive.
        assert_eq!(window_left(&windows, 0, MONDAY + 10 * 3600), None);
        // Monday 07:30 UTC is 09:30 at UTC+2.
        assert_eq!(
            window_left(&windows, 120, MONDAY + 7 * 3600 + 1800),
            Some(1800)
        );
        // Monday 01:00 UTC is Sunday 21:00 at UTC-4: Sunday's window, not Monday's.
        let sunday = [w(6, 20 * 60, 22 * 60)];
        assert_eq!(window_left(&sunday, -240, MONDAY + 3600), Some(3600));
        assert_eq!(window_left(&windows, -240, MONDAY + 3600), None);
        // A week later, the same.
        assert!(window_left(&windows, 0, MONDAY + 7 * 86_400 + 9 * 3600).is_some());
        // Tuesday is not Monday.
        assert!(window_left(&windows, 0, MONDAY + 86_400 + 9 * 3600).is_none());
        assert!(window_left(&[], 0, MONDAY).is_none());
    }

    #[test]
    fn only_public_https_endpoints_without_credentials_are_accepted() {
        for ok in [
            "https://push.example.org/up/abc",
            "https://push.example.org:8443/x?y=z",
            "https://93.184.216.34/x",
            "https://[2606:2800:220:1::1]/x",
        ] {
            assert!(check_endpoint(ok, false).is_ok(), "{ok}");
        }
        let long = format!("https://push.example.org/{}", "a".repeat(MAX_ENDPOINT_LEN));
        for bad in [
            "http://push.example.org/x",
            "ftp://push.example.org/x",
            "https://user:pw@push.example.org/x",
            "https://user@push.example.org/x",
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://172.16.0.1/x",
            "https://192.168.1.1/x",
            "https://169.254.169.254/latest",
            "https://100.64.0.1/x",
            "https://0.0.0.0/x",
            "https://[::1]/x",
            "https://[fe80::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://[64:ff9b::a00:1]/x",
            "https://[64:ff9b::5db8:d822]/x",
            "https://[64:ff9b:1::1]/x",
            "https://[2002:a00:1::1]/x",
            "https://[2002:5db8:d822::1]/x",
            "https://[fec0::1]/x",
            "https://[2001:db8::1]/x",
            "https://[2001:0:4136:e378::1]/x",
            "https://[::127.0.0.1]/x",
            "https://198.18.0.1/x",
            "https://240.0.0.1/x",
            "https://localhost/x",
            "https://a.localhost./x",
            "not a url",
            "",
            long.as_str(),
        ] {
            assert!(check_endpoint(bad, false).is_err(), "{bad}");
        }
        assert!(check_endpoint("http://127.0.0.1:9/x", true).is_ok());
        assert!(check_endpoint("http://[::1]:9/x", true).is_ok());
        assert!(check_endpoint("http://localhost:9/x", true).is_ok());
        // Allowing insecure endpoints allows loopback, never the private network.
        for bad in [
            "http://10.1.2.3/x",
            "http://192.168.1.1/x",
            "http://169.254.169.254/x",
            "http://[fd00::1]/x",
            "http://[64:ff9b::a00:1]/x",
        ] {
            assert!(check_endpoint(bad, true).is_err(), "{bad}");
        }
        assert!(check_endpoint("http://u:p@127.0.0.1:9/x", true).is_err());
        assert!(check_endpoint("ftp://127.0.0.1/x", true).is_err());
    }

    #[tokio::test]
    async fn names_are_resolved_at_send_time_and_private_answers_are_refused() {
        use reqwest::dns::Resolve;
        let strict = PublicOnly {
            allow_loopback: false,
        };
        let name = |n: &str| n.parse::<reqwest::dns::Name>().unwrap();
        // `localhost` resolves (through the system resolver) to loopback only.
        assert!(strict.resolve(name("localhost")).await.is_err());
        let relaxed = PublicOnly {
            allow_loopback: true,
        };
        let addrs: Vec<_> = relaxed.resolve(name("localhost")).await.unwrap().collect();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
        for ip in [
            "10.0.0.1",
            "192.168.0.1",
            "fd00::1",
            "64:ff9b::a00:1",
            "2002:a00:1::1",
        ] {
            assert!(!allowed_target(ip.parse().unwrap(), true), "{ip}");
        }
        assert!(allowed_target("93.184.216.34".parse().unwrap(), false));
        assert!(allowed_target("2606:2800:220:1::1".parse().unwrap(), false));
    }

    #[test]
    fn windows_must_be_real_days_and_minutes() {
        assert!(check_windows(&[w(0, 0, 1440), w(6, 1439, 1440)]).is_ok());
        assert!(check_windows(&[]).is_ok());
        assert!(check_windows(&[w(7, 0, 60)]).is_err());
        assert!(check_windows(&[w(0, 60, 60)]).is_err());
        assert!(check_windows(&[w(0, 60, 30)]).is_err());
        assert!(check_windows(&[w(0, 0, 1441)]).is_err());
        assert!(check_windows(&[w(0, 0, 60); MAX_WINDOWS + 1]).is_err());
    }
}

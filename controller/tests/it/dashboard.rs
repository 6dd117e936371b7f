//! The dashboard over real HTTP against the in-process controller: signing in and out
//! (the cookie's flags, wrong passwords, too many attempts), what each user sees, values
//! escaped, forms refused without their CSRF token or from another site, and a rollback
//! made from the page.

use serde_json::json;

use crate::api::Shop;
use crate::test_app::PASSWORD;

/// A browser without cookies of its own: the session cookie is passed by hand, redirects
/// are not followed (the tests look at them).
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

/// An answer: status, `Location`, `Set-Cookie`, `Content-Security-Policy`, body.
#[derive(Debug)]
struct Page {
    status: u16,
    location: String,
    set_cookie: String,
    policy: String,
    body: String,
}

impl Browser {
    fn new(base: &str) -> Self {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Self { http, base: base.to_owned(), cookie: None }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let request = match &self.cookie {
            Some(cookie) => request.header("cookie", cookie),
            None => request,
        };
        let answer = request.send().await.expect("the controller answers");
        let header =
            |name: &str| answer.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
        let (location, set_cookie, policy) =
            (header("location"), header("set-cookie"), header("content-security-policy"));
        let status = answer.status().as_u16();
        Page { status, location, set_cookie, policy, body: answer.text().await.unwrap_or_default() }
    }

    async fn get(&self, path: &str) -> Page {
        self.send(self.http.get(format!("{}{path}", self.base))).await
    }

    /// POSTs a form (`application/x-www-form-urlencoded`) with extra headers.
    async fn post(&self, path: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Page {
        let body: String =
            fields.iter().map(|(k, v)| format!("{}={}", encode(k), encode(v))).collect::<Vec<_>>().join("&");
        let mut request = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    /// Signs in as `username`, keeping the session cookie.
    async fn sign_in(&mut self, username: &str) -> Page {
        let page = self.post("/dashboard/login", &[("username", username), ("password", PASSWORD)], &[]).await;
        assert_eq!(page.status, 303, "{page:?}");
        self.cookie = Some(page.set_cookie.split(';').next().unwrap().to_owned());
        page
    }
}

fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
}

/// The CSRF token a page's forms carry.
fn csrf(body: &str) -> String {
    let at = body.find(r#"name="csrf" value=""#).expect("a form with a CSRF token") + r#"name="csrf" value=""#.len();
    body[at..].split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn signing_in_makes_a_strict_session_cookie_and_signing_out_ends_it() {
    let shop = Shop::start().await;
    let mut browser = Browser::new(&shop.platform.url);
    let page = browser.get("/dashboard/apps/shop").await;
    assert_eq!((page.status, page.location.as_str()), (303, "/dashboard/login?next=/dashboard/apps/shop"));
    let form = browser.get("/dashboard/login?next=/dashboard/apps/shop").await;
    assert!(form.status == 200 && form.body.contains(r#"value="/dashboard/apps/shop""#), "{form:?}");
    assert!(form.policy.contains("default-src 'none'") && form.policy.contains("frame-ancestors 'none'"));

    let wrong = browser.post("/dashboard/login", &[("username", "alice"), ("password", "nope")], &[]).await;
    assert!(wrong.status == 403 && wrong.body.contains("Wrong user name or password"), "{wrong:?}");
    assert!(wrong.set_cookie.is_empty());

    let fields = [("username", "alice"), ("password", PASSWORD), ("next", "/dashboard/apps/shop")];
    let over_https = browser.post("/dashboard/login", &fields, &[("x-forwarded-proto", "https")]).await;
    assert!(over_https.set_cookie.contains("; Secure"), "{over_https:?}");
    let signed = browser.sign_in("alice").await;
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/dashboard", "Max-Age=43200"] {
        assert!(signed.set_cookie.contains(flag), "{flag}: {}", signed.set_cookie);
    }
    assert!(!signed.set_cookie.contains("Secure"), "not over plain HTTP");
    let apps = browser.get("/dashboard").await;
    assert!(apps.status == 200 && apps.body.contains(r#"<a href="/dashboard/apps/shop">shop</a>"#), "{apps:?}");
    assert!(
        apps.body.contains("alice") && apps.body.contains("running") && apps.body.contains("web 1"),
        "{}",
        apps.body
    );
    assert!(!apps.body.contains("<script"), "no script on any page");

    let token = csrf(&apps.body);
    let refused = browser.post("/dashboard/logout", &[("csrf", "forged")], &[]).await;
    assert_eq!(refused.status, 403, "a forged token is refused");
    let out = browser.post("/dashboard/logout", &[("csrf", &token)], &[]).await;
    assert!(out.status == 303 && out.set_cookie.contains("Max-Age=0"), "{out:?}");
    assert_eq!(browser.get("/dashboard").await.status, 303, "the session is over");
}

#[tokio::test]
async fn sign_in_attempts_are_limited() {
    let shop = Shop::start().await;
    let browser = Browser::new(&shop.platform.url);
    let mut last = None;
    for _ in 0..30 {
        let page = browser.post("/dashboard/login", &[("username", "alice"), ("password", "guess")], &[]).await;
        if page.status == 429 {
            last = Some(page);
            break;
        }
    }
    let page = last.expect("refused after a number of wrong passwords");
    assert!(page.body.contains("Too many failed sign-ins"), "{page:?}");
    let right = browser.post("/dashboard/login", &[("username", "alice"), ("password", PASSWORD)], &[]).await;
    assert_eq!(right.status, 429, "even the right password waits");
}

#[tokio::test]
async fn each_user_sees_their_apps_and_every_value_is_escaped() {
    let shop = Shop::start().await;
    let config = json!({"GREETING": "<script>alert('x')</script>", "TOKEN": "s3cret"});
    let set = shop.platform.call(Some(&shop.alice), "patch", "/v2/apps/shop/config", Some(config)).await;
    assert_eq!(set.status, 200, "{set:?}");
    let bob = shop.platform.register(Some(&shop.admin), "bob").await;
    let made = shop.platform.call(Some(&bob), "post", "/v2/apps", Some(json!({"name": "bobs"}))).await;
    assert_eq!(made.status, 201);

    let mut alice = Browser::new(&shop.platform.url);
    alice.sign_in("alice").await;
    let page = alice.get("/dashboard/apps/shop").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("GREETING") && !page.body.contains("s3cret"), "values hidden until asked");
    let revealed = alice.get("/dashboard/apps/shop?reveal=config").await;
    assert!(revealed.body.contains("s3cret"), "{}", revealed.body);
    assert!(revealed.body.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"), "{}", revealed.body);
    assert!(!revealed.body.contains("<script"), "{}", revealed.body);
    assert!(!alice.get("/dashboard").await.body.contains("bobs"), "not alice's");
    let other = alice.get("/dashboard/apps/bobs").await;
    assert!(other.status == 404 && other.body.contains("not found"), "{other:?}");
    let mut admin = Browser::new(&shop.platform.url);
    admin.sign_in("admin").await;
    let everything = admin.get("/dashboard").await.body;
    assert!(everything.contains("bobs") && everything.contains("shop") && everything.contains("not deployed"));
}

#[tokio::test]
async fn a_rollback_is_made_from_the_page_and_only_from_it() {
    let shop = Shop::start().await;
    shop.platform.call(Some(&shop.alice), "patch", "/v2/apps/shop/config", Some(json!({"A": "1"}))).await;
    assert!(shop.deployed(2).await);
    let mut browser = Browser::new(&shop.platform.url);
    browser.sign_in("alice").await;
    let app = browser.get("/dashboard/apps/shop").await;
    assert!(app.body.contains(r#"href="/dashboard/apps/shop/rollback/1""#), "{}", app.body);
    let confirm = browser.get("/dashboard/apps/shop/rollback/1").await;
    assert!(confirm.status == 200 && confirm.body.contains("Roll back shop to v1?"), "{confirm:?}");
    let token = csrf(&confirm.body);

    let forged = browser.post("/dashboard/apps/shop/rollback/1", &[], &[]).await;
    assert_eq!(forged.status, 403, "no token");
    let fields = [("csrf", token.as_str())];
    let cross = browser.post("/dashboard/apps/shop/rollback/1", &fields, &[("origin", "https://evil.test")]).await;
    assert_eq!(cross.status, 403, "from another site, even with the token");
    let other_site =
        browser.post("/dashboard/apps/shop/rollback/1", &fields, &[("sec-fetch-site", "cross-site")]).await;
    assert_eq!(other_site.status, 403);
    let listed = shop.platform.call(Some(&shop.alice), "get", "/v2/apps/shop/releases", None).await.body;
    assert_eq!(listed.as_array().unwrap().len(), 2, "nothing was rolled back yet");

    let done = browser.post("/dashboard/apps/shop/rollback/1", &fields, &[]).await;
    assert_eq!((done.status, done.location.as_str()), (303, "/dashboard/apps/shop"), "{done:?}");
    assert!(shop.deployed(3).await, "v3 (v1 again) rolls out");
    let release = shop.platform.call(Some(&shop.alice), "get", "/v2/apps/shop/releases/3", None).await.body;
    assert_eq!(release["summary"], "alice rolled back to v1");
    let page = browser.get("/dashboard/apps/shop").await.body;
    assert!(page.contains("alice rolled back to v1"), "{page}");
}

#[tokio::test]
async fn processes_are_scaled_and_restarted_and_config_changed_from_the_page() {
    let shop = Shop::start().await;
    let mut browser = Browser::new(&shop.platform.url);
    browser.sign_in("alice").await;
    let page = browser.get("/dashboard/apps/shop").await;
    assert!(page.body.contains(r#"name="quantity" min="0" max="100" value="1""#), "{}", page.body);
    let token = csrf(&page.body);

    let scaled = browser
        .post("/dashboard/apps/shop/scale", &[("csrf", &token), ("process", "web"), ("quantity", "2")], &[])
        .await;
    assert_eq!((scaled.status, scaled.location.as_str()), (303, "/dashboard/apps/shop"), "{scaled:?}");
    let two = skiff_testing::eventually(std::time::Duration::from_secs(10), || async {
        let page = browser.get("/dashboard").await.body;
        page.contains("web 2").then_some(())
    });
    assert!(two.await.is_some(), "two web processes");
    let wrong = browser
        .post("/dashboard/apps/shop/scale", &[("csrf", &token), ("process", "clock"), ("quantity", "1")], &[])
        .await;
    assert!(wrong.status == 400 && wrong.body.contains("no `clock` process type"), "{wrong:?}");

    let set =
        browser.post("/dashboard/apps/shop/config", &[("csrf", &token), ("key", "MODE"), ("value", "fast")], &[]).await;
    assert_eq!(set.status, 303, "{set:?}");
    assert!(shop.deployed(2).await, "a config change makes a release");
    let config = shop.platform.call(Some(&shop.alice), "get", "/v2/apps/shop/config", None).await.body;
    assert_eq!(config, json!({"MODE": "fast"}));
    let unset =
        browser.post("/dashboard/apps/shop/config", &[("csrf", &token), ("key", "MODE"), ("unset", "1")], &[]).await;
    assert_eq!(unset.status, 303);
    let config = shop.platform.call(Some(&shop.alice), "get", "/v2/apps/shop/config", None).await.body;
    assert_eq!(config, json!({}));

    let restarted = browser.post("/dashboard/apps/shop/restart", &[("csrf", &token)], &[]).await;
    assert_eq!(restarted.status, 303, "{restarted:?}");
    let forged = browser.post("/dashboard/apps/shop/restart", &[("csrf", "x")], &[]).await;
    assert_eq!(forged.status, 403);
    let events = browser.get("/dashboard/apps/shop").await.body;
    assert!(events.contains("Scaled to web=2 by alice") && events.contains("Restarting web by alice"), "{events}");
}

#[tokio::test]
async fn traffic_is_charted_per_minute_with_a_line_at_every_release() {
    let shop = Shop::start().await;
    let sample = |requests: u64, errors: u64| json!({"samples": [{"app": "shop", "buckets": [{"bucket": 40, "requests": requests, "errors": errors}]}]});
    let token = Some(crate::test_app::SERVICE_TOKEN);
    // Two routers report for the same minute; an app that does not exist is left out.
    for body in [sample(30, 0), sample(12, 3), json!({"samples": [{"app": "ghost", "buckets": []}]})] {
        let taken = shop.platform.call(token, "post", "/v2/hooks/traffic", Some(body)).await;
        assert_eq!(taken.status, 204, "{taken:?}");
    }
    shop.platform.call(Some(&shop.alice), "patch", "/v2/apps/shop/config", Some(json!({"A": "1"}))).await;
    assert!(shop.deployed(2).await);
    let mut browser = Browser::new(&shop.platform.url);
    browser.sign_in("alice").await;
    let page = browser.get("/dashboard/apps/shop").await.body;
    assert!(page.contains("Requests and 5xx answers per minute") && page.contains("Latency (p50, p95, p99)"));
    assert!(page.contains(r#"<polyline class="requests""#) && page.contains(r#"<polyline class="p99""#), "{page}");
    assert!(page.contains("<title>v2</title>") && page.contains("<title>v1</title>"), "a line at each release");
    // 42 requests this minute: the axis goes to 50.
    assert!(page.contains(">50 /min<"), "{page}");
    let day = browser.get("/dashboard/apps/shop?range=day").await.body;
    assert!(day.contains("<strong>Last day</strong>") && day.contains(r#"<polyline class="errors""#));
    let unknown = shop.platform.call(Some(&shop.alice), "post", "/v2/hooks/traffic", Some(sample(1, 0))).await;
    assert_eq!(unknown.status, 403, "routers only");
}

#[tokio::test]
async fn the_log_page_works_without_the_logger_and_its_assets_are_the_dashboards_own() {
    let shop = Shop::start().await;
    let mut browser = Browser::new(&shop.platform.url);
    browser.sign_in("alice").await;
    let page = browser.get("/dashboard/apps/shop/logs?process=web&source=router").await;
    assert_eq!(page.status, 200, "{page:?}");
    assert!(page.body.contains("the logger is not reachable"), "said, not failed: {}", page.body);
    assert!(page.body.contains(r#"data-stream="/dashboard/apps/shop/logs/stream?process=web&amp;source=router""#));
    assert!(page.body.contains(r#"<option value="router" selected>"#));
    assert!(page.body.contains(r#"<script src="/dashboard/assets/logs.js"></script>"#));
    assert!(page.policy.contains("script-src 'self'") && page.policy.contains("connect-src 'self'"));
    for (path, kind) in [("/dashboard/assets/logs.js", "text/javascript"), ("/dashboard/assets/skiff.css", "text/css")]
    {
        let answer = reqwest::get(format!("{}{path}", shop.platform.url)).await.unwrap();
        let content_type = answer.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(answer.status() == 200 && content_type.starts_with(kind), "{path}: {content_type}");
    }
    let stream = browser.get("/dashboard/apps/shop/logs/stream").await;
    assert_eq!(stream.status, 503, "{stream:?}");
}

#[tokio::test]
async fn builds_are_listed_with_their_logs_shown_as_text() {
    let shop = Shop::start().await;
    let failed = json!({
        "app": "shop", "username": "alice", "kind": "dockerfile", "status": "failed",
        "git_sha": "fedcba9876543210", "procfile": {}, "duration_ms": 1500, "message": "Fix <script>alert(1)</script>",
        "log": "-----> building\nStep 1: <script>alert('x')</script>\nerror: it broke",
    });
    let recorded =
        shop.platform.call(Some(crate::test_app::SERVICE_TOKEN), "post", "/v2/hooks/builds", Some(failed)).await;
    assert_eq!(recorded.status, 201, "{recorded:?}");
    let id = recorded.body["build"]["id"].as_i64().unwrap();
    let mut browser = Browser::new(&shop.platform.url);
    browser.sign_in("alice").await;
    let app = browser.get("/dashboard/apps/shop").await.body;
    assert!(app.contains(&format!(r#"href="/dashboard/apps/shop/builds/{id}""#)) && app.contains("fedcba9"), "{app}");
    assert!(app.contains(r#"<span class="state failed">failed</span>"#) && app.contains("1.5 s"));
    assert!(app.contains("Fix &lt;script&gt;alert(1)&lt;/script&gt;") && !app.contains("<script>alert"), "{app}");
    let build = browser.get(&format!("/dashboard/apps/shop/builds/{id}")).await;
    assert_eq!(build.status, 200);
    assert!(build.body.contains("Step 1: &lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;"), "{}", build.body);
    assert!(!build.body.contains("<script>alert"));
    assert_eq!(browser.get("/dashboard/apps/shop/builds/999").await.status, 404);
    assert_eq!(browser.get("/dashboard/apps/shop/builds/x").await.status, 404);
}

#[tokio::test]
async fn the_platform_page_is_for_admins() {
    let shop = Shop::start().await;
    let mut alice = Browser::new(&shop.platform.url);
    alice.sign_in("alice").await;
    let refused = alice.get("/dashboard/platform").await;
    assert_eq!(refused.status, 403);
    assert!(!alice.get("/dashboard").await.body.contains("/dashboard/platform"), "not in alice's navigation");
    let token = csrf(&alice.get("/dashboard").await.body);
    assert_eq!(alice.post("/dashboard/platform/gc", &[("csrf", &token)], &[]).await.status, 403);

    let mut admin = Browser::new(&shop.platform.url);
    admin.sign_in("admin").await;
    let page = admin.get("/dashboard/platform").await;
    assert_eq!(page.status, 200, "{page:?}");
    for expected in ["Components", "controller", "<td>alice</td>", "<td>admin</td><td>admin</td>", "Collect now"] {
        assert!(page.body.contains(expected), "{expected}: {}", page.body);
    }
    let token = csrf(&page.body);
    assert_eq!(admin.post("/dashboard/platform/gc", &[("dry_run", "1")], &[]).await.status, 403, "no token");
    // No registry runs beside this controller: the collection says it failed.
    let failed = admin.post("/dashboard/platform/gc", &[("csrf", &token), ("dry_run", "1")], &[]).await;
    assert!(failed.status == 503 && failed.body.contains("garbage collection failed"), "{failed:?}");
}

#[tokio::test]
async fn the_apps_page_shows_a_hundred_apps_at_a_time() {
    let shop = Shop::start().await;
    for n in 0..101 {
        let made = shop
            .platform
            .call(Some(&shop.admin), "post", "/v2/apps", Some(json!({"name": format!("app{n:03}")})))
            .await;
        assert_eq!(made.status, 201);
    }
    let mut admin = Browser::new(&shop.platform.url);
    admin.sign_in("admin").await;
    let first = admin.get("/dashboard").await.body;
    assert_eq!(first.matches(r#"<a href="/dashboard/apps/"#).count(), 100);
    assert!(first.contains("Apps 1–100 of 102") && first.contains(r#"href="/dashboard?page=2""#), "{first}");
    let second = admin.get("/dashboard?page=2").await.body;
    assert_eq!(second.matches(r#"<a href="/dashboard/apps/"#).count(), 2);
    assert!(second.contains("Apps 101–102 of 102") && second.contains(r#"href="/dashboard?page=1""#));
    let beyond = admin.get("/dashboard?page=9").await.body;
    assert!(beyond.contains("Apps 101–102 of 102"), "the last page");
}

#[tokio::test]
async fn domains_collaborators_and_automatic_certificates_are_changed_from_the_page() {
    let shop = Shop::start().await;
    shop.platform.register(Some(&shop.admin), "bob").await;
    let mut browser = Browser::new(&shop.platform.url);
    browser.sign_in("alice").await;
    let token = csrf(&browser.get("/dashboard/apps/shop").await.body);
    let post = |action: &'static str, fields: Vec<(&'static str, &'static str)>| {
        let mut all = vec![("csrf", token.as_str())];
        all.extend(fields);
        let browser = &browser;
        async move { browser.post(&format!("/dashboard/apps/shop/{action}"), &all, &[]).await }
    };
    assert_eq!(post("domain-add", vec![("domain", "www.shop.test")]).await.status, 303);
    let bad = post("domain-add", vec![("domain", "not a domain")]).await;
    assert_eq!(bad.status, 400, "{bad:?}");
    assert_eq!(post("certs-auto", vec![]).await.status, 303);
    assert_eq!(post("collaborator-add", vec![("user", "bob")]).await.status, 303);
    let page = browser.get("/dashboard/apps/shop").await.body;
    assert!(page.contains("<td>www.shop.test</td>") && page.contains("Automatic certificates are on"), "{page}");
    assert!(page.contains("<td>bob</td>") && page.contains(r#"<span class="state pending">pending</span>"#), "{page}");
    let auto = shop.platform.call(Some(&shop.alice), "get", "/v2/apps/shop/acme", None).await.body;
    assert_eq!(auto["enabled"], true);

    assert_eq!(post("certs-auto", vec![("off", "1")]).await.status, 303);
    assert_eq!(post("domain-remove", vec![("domain", "www.shop.test")]).await.status, 303);
    assert_eq!(post("collaborator-remove", vec![("user", "bob")]).await.status, 303);
    let page = browser.get("/dashboard/apps/shop").await.body;
    let gone = !page.contains("<td>www.shop.test</td>") && !page.contains("<td>bob</td>");
    assert!(gone && page.contains("Get certificates automatically"), "{page}");
    let missing = post("collaborator-remove", vec![("user", "bob")]).await;
    assert_eq!(missing.status, 404, "{missing:?}");
}

#[tokio::test]
async fn certificates_and_drains_are_added_served_and_removed_from_the_page() {
    let shop = Shop::start().await;
    let mut browser = Browser::new(&shop.platform.url);
    browser.sign_in("alice").await;
    let page = browser.get("/dashboard/apps/shop").await.body;
    assert!(page.contains(r#"action="/dashboard/apps/shop/cert-add""#) && page.contains("<textarea"), "{page}");
    let token = csrf(&page);
    let post = |action: &'static str, fields: Vec<(&'static str, String)>| {
        let mut all = vec![("csrf", token.clone())];
        all.extend(fields);
        let browser = &browser;
        async move {
            let fields: Vec<(&str, &str)> = all.iter().map(|(k, v)| (*k, v.as_str())).collect();
            browser.post(&format!("/dashboard/apps/shop/{action}"), &fields, &[]).await
        }
    };
    let certified = rcgen::generate_simple_self_signed(vec!["www.shop.test".to_owned()]).unwrap();
    let (chain, key) = (certified.cert.pem(), certified.signing_key.serialize_pem());
    assert_eq!(post("domain-add", vec![("domain", "www.shop.test".into())]).await.status, 303);
    let uploaded = vec![("name", "site".into()), ("certificate_chain", chain.clone()), ("private_key", key.clone())];
    assert_eq!(post("cert-add", uploaded.clone()).await.status, 303);
    let again = post("cert-add", uploaded).await;
    assert_eq!(again.status, 409, "the name is taken: {again:?}");
    let mismatched = vec![("name", "other".into()), ("certificate_chain", chain), ("private_key", "not a key".into())];
    let refused = post("cert-add", mismatched).await;
    assert_eq!(refused.status, 400, "{refused:?}");
    let attached = post("cert-attach", vec![("name", "site".into()), ("domain", "www.shop.test".into())]).await;
    assert_eq!(attached.status, 303, "{attached:?}");
    let certs = shop.call("get", "/certs", None).await.body;
    assert_eq!(certs[0]["domains"][0], "www.shop.test", "{certs}");
    let page = browser.get("/dashboard/apps/shop").await.body;
    assert!(page.contains("<td>site</td><td>www.shop.test</td><td>www.shop.test</td>"), "{page}");

    // A drain's password is masked; no logger runs here, so its counts are unknown.
    let drain = post("drain-add", vec![("url", "https://user:secret@127.0.0.1:9/logs".into())]).await;
    assert_eq!(drain.status, 303, "{drain:?}");
    let outside = post("drain-add", vec![("url", "syslog://10.1.2.3:514".into())]).await;
    assert_eq!(outside.status, 400, "app drains may not reach other networks: {outside:?}");
    let page = browser.get("/dashboard/apps/shop").await.body;
    assert!(page.contains("127.0.0.1:9/logs") && !page.contains("secret"), "{page}");
    let drains = shop.call("get", "/drains", None).await.body;
    let id = drains[0]["id"].as_i64().unwrap().to_string();
    assert_eq!(post("drain-remove", vec![("id", id.clone())]).await.status, 303);
    assert_eq!(post("drain-remove", vec![("id", id)]).await.status, 404, "gone already");
    assert_eq!(post("cert-remove", vec![("name", "site".into())]).await.status, 303);
    let page = browser.get("/dashboard/apps/shop").await.body;
    assert!(!page.contains("127.0.0.1:9/logs") && !page.contains("<td>site</td>"), "{page}");
    assert_eq!(shop.call("get", "/certs", None).await.body.as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn the_audit_trail_is_read_a_page_at_a_time_newest_first() {
    let shop = Shop::start().await;
    for n in 0..105 {
        let added = shop.call("post", "/domains", Some(json!({"domain": format!("d{n}.shop.test")}))).await;
        assert_eq!(added.status, 201, "{added:?}");
    }
    let mut alice = Browser::new(&shop.platform.url);
    alice.sign_in("alice").await;
    let app = alice.get("/dashboard/apps/shop").await.body;
    assert!(app.contains(r#"href="/dashboard/apps/shop/activity""#), "{app}");
    let first = alice.get("/dashboard/apps/shop/activity").await.body;
    assert_eq!(first.matches("<tr><td><time").count(), 100, "{first}");
    let newest = first.find("d104.shop.test").expect("the newest event");
    assert!(newest < first.find("d103.shop.test").expect("the one before"), "newest first");
    let older = first.split(r#"href="/dashboard/apps/shop/activity?before="#).nth(1).expect("a link to older events");
    let before = older.split('"').next().unwrap();
    let second = alice.get(&format!("/dashboard/apps/shop/activity?before={before}")).await.body;
    assert!(second.contains("The trail starts here.") && second.contains("created the app"), "{second}");
    assert!(!second.contains("d5.shop.test") && second.contains("d4.shop.test"), "{second}");
    assert_eq!(alice.get("/dashboard/platform/activity").await.status, 403, "for admins");
    assert_eq!(alice.get("/dashboard/apps/nope/activity").await.status, 404);

    let mut admin = Browser::new(&shop.platform.url);
    admin.sign_in("admin").await;
    let everything = admin.get("/dashboard/platform/activity").await.body;
    assert!(everything.contains("<th>App</th>") && everything.contains("<td>shop</td>"), "{everything}");
}

//! `--model ORG/NAME[@REVISION]` against a Hub served from this process.
//!
//! Two servers on 127.0.0.1 stand in for the Hub and its file storage:
//! the Hub answers `/ORG/NAME/resolve/REVISION/FILE` with the headers the
//! real one sends (`ETag`, `X-Repo-Commit`, and for `*.safetensors` a
//! redirect to the storage with `X-Linked-Etag` and `X-Linked-Size`), the
//! storage serves bytes by ETag and honours `Range`. Every request is
//! logged, so a test can say which requests were made, with which headers.
//! The `scratchgpt` binary runs with `HF_ENDPOINT` at the fake Hub and
//! `HF_HOME` in a temporary folder; nothing reaches the network.

mod common;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex, OnceLock};

use common::{binary, scratch_dir, train_nano};

const COMMIT: &str = "4f1c0de5a7e2b9d3c6f8a1b0e9d2c7f4a3b6e5d1";
const TOKEN: &str = "hf_test_token";
/// The files a model folder made by `scratchgpt train` offers the Hub.
const SERVED: [&str; 5] = ["config.json", "model.safetensors", "vocab.json", "merges.txt", "generation_config.json"];

/// A nano GPT with a byte-level BPE tokenizer, trained once per test
/// process: the model the fake Hub serves.
fn source_model() -> &'static Path {
    static MODEL: OnceLock<PathBuf> = OnceLock::new();
    MODEL.get_or_init(|| {
        let dir = scratch_dir("hub-source");
        train_nano(&dir, "the cat sat on the mat. the dog sat on the log. ", "bpe:300", 2)
    })
}

/// One request as a server saw it.
#[derive(Debug, Clone)]
struct Seen {
    server: &'static str,
    method: String,
    path: String,
    authorization: Option<String>,
    range: Option<String>,
}

struct Repo {
    files: BTreeMap<String, Vec<u8>>,
    /// Requests without `Authorization: Bearer TOKEN` get 401 (a gated model).
    gated: bool,
}

/// What the fake Hub serves, and how it misbehaves.
#[derive(Default)]
struct State {
    repos: BTreeMap<String, Repo>,
    /// The storage sends this many bytes of a body and then drops the
    /// connection, `cuts_left` times.
    cut_after: usize,
    cuts_left: usize,
    log: Vec<Seen>,
    storage_origin: String,
}

struct FakeHub {
    endpoint: String,
    state: Arc<Mutex<State>>,
}

impl FakeHub {
    /// The Hub with `org/tiny` (the source model), `org/gated` (the same,
    /// behind a token) at commit [`COMMIT`], revisions `main` and `v1`.
    fn start() -> FakeHub {
        let files: BTreeMap<String, Vec<u8>> = SERVED
            .iter()
            .filter_map(|name| Some((name.to_string(), std::fs::read(source_model().join(name)).ok()?)))
            .collect();
        assert!(files.contains_key("vocab.json") && files.contains_key("model.safetensors"), "{:?}", files.keys());
        let state = Arc::new(Mutex::new(State::default()));
        {
            let mut s = state.lock().unwrap();
            s.repos.insert("org/tiny".into(), Repo { files: files.clone(), gated: false });
            s.repos.insert("org/gated".into(), Repo { files, gated: true });
        }
        let hub = listen(state.clone(), "hub");
        let storage = listen(state.clone(), "storage");
        state.lock().unwrap().storage_origin = storage;
        FakeHub { endpoint: hub, state }
    }

    /// Serves `org/NAME`: the source model with `extra` files added.
    fn add_repo(&self, name: &str, extra: &[(&str, String)]) {
        let mut s = self.state.lock().unwrap();
        let mut files = s.repos["org/tiny"].files.clone();
        files.extend(extra.iter().map(|(file, text)| (file.to_string(), text.clone().into_bytes())));
        s.repos.insert(format!("org/{name}"), Repo { files, gated: false });
    }

    fn log(&self) -> Vec<Seen> {
        std::mem::take(&mut self.state.lock().unwrap().log)
    }

    fn cut(&self, after: usize, times: usize) {
        let mut s = self.state.lock().unwrap();
        (s.cut_after, s.cuts_left) = (after, times);
    }
}

/// Binds a port and answers requests on it from a thread, one connection
/// at a time (`Connection: close` on every answer); returns its origin.
fn listen(state: Arc<Mutex<State>>, server: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let _ = answer(stream, &state, server);
        }
    });
    origin
}

fn answer(mut stream: TcpStream, state: &Mutex<State>, server: &'static str) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
    let (mut authorization, mut range) = (None, None);
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(value.trim().to_string()),
                "range" => range = Some(value.trim().to_string()),
                _ => {}
            }
        }
    }
    let seen = Seen { server, method: method.clone(), path: path.clone(), authorization, range };
    let (status, headers, body, cut) = {
        let mut s = state.lock().unwrap();
        s.log.push(seen.clone());
        if server == "hub" {
            let (status, headers, body) = hub_answer(&s, &seen);
            (status, headers, body, None)
        } else {
            storage_answer(&mut s, &seen)
        }
    };
    let mut head = format!("HTTP/1.1 {status} X\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        head += &format!("{name}: {value}\r\n");
    }
    head += "\r\n";
    stream.write_all(head.as_bytes())?;
    if method != "HEAD" {
        stream.write_all(&body[..cut.unwrap_or(body.len()).min(body.len())])?;
    }
    stream.flush()?;
    stream.shutdown(std::net::Shutdown::Both)
}

type Headers = Vec<(&'static str, String)>;

/// `/ORG/NAME/resolve/REVISION/FILE`, as the Hub answers it.
fn hub_answer(s: &State, seen: &Seen) -> (u16, Headers, Vec<u8>) {
    let error = |status, code: &str| (status, vec![("X-Error-Code", code.to_string())], Vec::new());
    let pieces: Vec<&str> = seen.path.trim_start_matches('/').splitn(5, '/').collect();
    let [org, name, "resolve", revision, file] = pieces[..] else {
        return error(404, "RepoNotFound");
    };
    let Some(repo) = s.repos.get(&format!("{org}/{name}")) else {
        return error(404, "RepoNotFound");
    };
    if repo.gated && seen.authorization.as_deref() != Some(&format!("Bearer {TOKEN}")) {
        return error(401, "GatedRepo");
    }
    if !["main", "v1", COMMIT].contains(&revision) {
        return error(404, "RevisionNotFound");
    }
    let Some(bytes) = repo.files.get(file) else {
        return error(404, "EntryNotFound");
    };
    let etag = etag_of(bytes);
    let mut headers: Headers = vec![("X-Repo-Commit", COMMIT.to_string())];
    if file.ends_with(".safetensors") {
        // Large files live in the storage: a redirect, described by the
        // X-Linked-* headers.
        headers.push(("Location", format!("{}/{etag}", s.storage_origin)));
        headers.push(("X-Linked-Etag", format!("\"{etag}\"")));
        headers.push(("X-Linked-Size", bytes.len().to_string()));
        return (302, headers, Vec::new());
    }
    headers.push(("ETag", format!("\"{etag}\"")));
    (200, headers, bytes.clone())
}

/// `/ETAG`, with `Range: bytes=N-`, and the cuts [`FakeHub::cut`] asked for.
fn storage_answer(s: &mut State, seen: &Seen) -> (u16, Headers, Vec<u8>, Option<usize>) {
    let wanted = seen.path.trim_start_matches('/');
    let Some(bytes) = s.repos.values().flat_map(|r| r.files.values()).find(|b| etag_of(b) == wanted).cloned() else {
        return (404, vec![], vec![], None);
    };
    let cut = (s.cuts_left > 0 && seen.method == "GET").then(|| {
        s.cuts_left -= 1;
        s.cut_after
    });
    match seen.range.as_deref().and_then(|r| r.strip_prefix("bytes=")?.strip_suffix('-')?.parse::<usize>().ok()) {
        Some(start) if start < bytes.len() => {
            let range = format!("bytes {start}-{}/{}", bytes.len() - 1, bytes.len());
            (206, vec![("Content-Range", range)], bytes[start..].to_vec(), cut)
        }
        Some(_) => (416, vec![], vec![], None),
        None => (200, vec![], bytes, cut),
    }
}

/// A stand-in for the Hub's ETags (sha256 or git sha1 there): any name
/// that differs with the bytes will do.
fn etag_of(bytes: &[u8]) -> String {
    let hash = bytes.iter().fold(0xcbf29ce484222325u64, |h, &b| (h ^ b as u64).wrapping_mul(0x100000001b3));
    format!("{hash:016x}{:08x}", bytes.len())
}

/// Runs the binary with only the Hub settings given (none inherited, so a
/// developer's own token, cache or proxy cannot leak in).
fn run_cli(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = std::process::Command::new(binary());
    command.args(args).env("RUST_BACKTRACE", "1");
    for name in [
        "HF_TOKEN",
        "HF_HOME",
        "HF_HUB_CACHE",
        "HF_HUB_OFFLINE",
        "HF_ENDPOINT",
        "HF_TOKEN_PATH",
        "http_proxy",
        "https_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "all_proxy",
    ] {
        command.env_remove(name);
    }
    command.envs(env.iter().copied());
    command.output().expect("the binary runs")
}

/// Exit code 2, one line on stderr, containing every needle.
fn assert_fails(out: &Output, needles: &[&str]) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "not one line: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "{stderr:?} lacks {needle:?}");
    }
}

fn generate(model: &str, env: &[(&str, &str)]) -> Output {
    run_cli(&["generate", "--model", model, "--prompt", "the cat", "--max-new-tokens", "5", "--json"], env)
}

fn stdout_of(out: &Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn repo_dir(home: &Path, name: &str) -> PathBuf {
    home.join("hub").join(format!("models--org--{name}"))
}

#[test]
fn a_hub_model_is_fetched_into_the_cache_layout_once_and_then_read_offline() {
    let hub = FakeHub::start();
    let home = scratch_dir("hub-home-layout");
    let env = [("HF_ENDPOINT", hub.endpoint.as_str()), ("HF_HOME", home.to_str().unwrap())];
    let local = stdout_of(&generate(source_model().to_str().unwrap(), &[]));

    // The first run downloads, and generates what the folder itself does.
    assert_eq!(stdout_of(&generate("org/tiny", &env)), local);
    let requests = hub.log();
    let storage_gets: Vec<&Seen> = requests.iter().filter(|r| r.server == "storage").collect();
    assert_eq!(storage_gets.len(), 1, "the weights come from the storage once: {requests:#?}");
    assert!(requests.iter().all(|r| r.authorization.is_none()), "no token was set: {requests:#?}");

    let repo = repo_dir(&home, "tiny");
    assert_eq!(std::fs::read_to_string(repo.join("refs/main")).unwrap(), COMMIT);
    let snapshot = repo.join("snapshots").join(COMMIT);
    for name in SERVED.iter().filter(|name| source_model().join(name).exists()) {
        let link = snapshot.join(name);
        let bytes = std::fs::read(source_model().join(name)).unwrap();
        let target = std::fs::read_link(&link).unwrap_or_else(|e| panic!("{name} is not a link: {e}"));
        assert_eq!(target, Path::new("../../blobs").join(etag_of(&bytes)), "{name}: a relative link to its blob");
        assert_eq!(std::fs::read(&link).unwrap(), bytes, "{name}");
    }
    // The optional files the Hub lacks are remembered, as huggingface_hub does.
    assert!(repo.join(".no_exist").join(COMMIT).join("tokenizer.json").is_file());
    let blobs: Vec<String> =
        std::fs::read_dir(repo.join("blobs")).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert!(blobs.iter().all(|b| !b.ends_with(".incomplete")), "{blobs:?}");

    // Cached: no request at all, by branch, tag-less commit or offline.
    assert_eq!(stdout_of(&generate("org/tiny", &env)), local);
    assert_eq!(stdout_of(&generate(&format!("org/tiny@{COMMIT}"), &env)), local);
    let offline = [env[0], env[1], ("HF_HUB_OFFLINE", "1")];
    assert_eq!(stdout_of(&generate("org/tiny", &offline)), local);
    assert_eq!(hub.log().len(), 0, "a cached model made requests");

    // Offline, a model that is not cached is one line that says so.
    assert_fails(&generate("org/gated", &offline), &["org/gated", "HF_HUB_OFFLINE"]);
    assert_fails(&generate("org/tiny@v1", &offline), &["org/tiny@v1", "not in the Hugging Face cache"]);
    assert_eq!(hub.log().len(), 0);

    // Another revision of the same commit: its ref is recorded, and the
    // blobs already cached are not fetched again.
    assert_eq!(stdout_of(&generate("org/tiny@v1", &env)), local);
    assert_eq!(std::fs::read_to_string(repo.join("refs/v1")).unwrap(), COMMIT);
    assert!(hub.log().iter().all(|r| r.method == "HEAD"), "the blobs were fetched again");
}

#[test]
fn a_download_cut_off_mid_file_continues_from_where_it_stopped() {
    let hub = FakeHub::start();
    let weights = std::fs::read(source_model().join("model.safetensors")).unwrap();
    let blob = |home: &Path| repo_dir(home, "tiny").join("blobs").join(etag_of(&weights));

    // One cut: the same run asks for the rest with a Range request.
    let home = scratch_dir("hub-home-cut-once");
    let env = [("HF_ENDPOINT", hub.endpoint.as_str()), ("HF_HOME", home.to_str().unwrap())];
    hub.cut(10_000, 1);
    assert!(run_cli(&["info", "--model", "org/tiny"], &env).status.success());
    let ranges: Vec<Option<String>> =
        hub.log().into_iter().filter(|r| r.server == "storage").map(|r| r.range).collect();
    assert_eq!(ranges, [None, Some("bytes=10000-".to_string())]);
    assert_eq!(std::fs::read(blob(&home)).unwrap(), weights);

    // Cut on every attempt: the run gives up in one line, leaving the
    // bytes it has in blobs/ and nothing half-made in the snapshot.
    let home = scratch_dir("hub-home-cut-always");
    let env = [("HF_ENDPOINT", hub.endpoint.as_str()), ("HF_HOME", home.to_str().unwrap())];
    hub.cut(10_000, usize::MAX);
    assert_fails(&run_cli(&["info", "--model", "org/tiny"], &env), &["org/tiny", "model.safetensors", "run again"]);
    let partial = blob(&home).with_extension("incomplete");
    let kept = std::fs::metadata(&partial).unwrap().len();
    assert!(kept >= 10_000 && kept < weights.len() as u64, "{kept}");
    let snapshot = repo_dir(&home, "tiny").join("snapshots").join(COMMIT);
    assert!(snapshot.join("config.json").is_file());
    assert!(std::fs::symlink_metadata(snapshot.join("model.safetensors")).is_err(), "a half file in the snapshot");
    assert!(!blob(&home).exists());

    // The next run asks only for the rest.
    hub.cut(0, 0);
    hub.log();
    assert!(run_cli(&["info", "--model", "org/tiny"], &env).status.success());
    let ranges: Vec<Option<String>> =
        hub.log().into_iter().filter(|r| r.server == "storage").map(|r| r.range).collect();
    assert_eq!(ranges, [Some(format!("bytes={kept}-"))]);
    assert_eq!(std::fs::read(blob(&home)).unwrap(), weights);
    assert!(!partial.exists());
}

#[test]
fn a_gated_model_needs_the_token_which_goes_to_the_hub_only() {
    let hub = FakeHub::start();
    let home = scratch_dir("hub-home-gated");
    let env = [("HF_ENDPOINT", hub.endpoint.as_str()), ("HF_HOME", home.to_str().unwrap())];
    assert_fails(&generate("org/gated", &env), &["org/gated", "HF_TOKEN", "401"]);
    assert!(!repo_dir(&home, "gated").join("snapshots").exists());
    let wrong = [env[0], env[1], ("HF_TOKEN", "hf_wrong")];
    assert_fails(&generate("org/gated", &wrong), &["org/gated", "does not grant access"]);
    hub.log();

    // The token from the token file huggingface_hub's login writes.
    std::fs::write(home.join("token"), format!("{TOKEN}\n")).unwrap();
    assert!(generate("org/gated", &env).status.success());
    let requests = hub.log();
    for request in &requests {
        let expected = (request.server == "hub").then(|| format!("Bearer {TOKEN}"));
        assert_eq!(request.authorization, expected, "{request:?}");
    }
    assert!(requests.iter().any(|r| r.server == "storage"));

    // HF_TOKEN comes before the file.
    let other = scratch_dir("hub-home-gated-env");
    std::fs::write(other.join("token"), "hf_stale").unwrap();
    let with_env = [env[0], ("HF_HOME", other.to_str().unwrap()), ("HF_TOKEN", TOKEN)];
    assert!(generate("org/gated", &with_env).status.success());
}

#[test]
fn missing_models_and_unreachable_hubs_are_one_line_and_a_local_folder_wins() {
    let hub = FakeHub::start();
    let home = scratch_dir("hub-home-missing");
    let env = [("HF_ENDPOINT", hub.endpoint.as_str()), ("HF_HOME", home.to_str().unwrap())];
    assert_fails(&generate("org/nothing", &env), &["org/nothing", "no such model", "404"]);
    assert_fails(&generate("org/tiny@nobranch", &env), &["org/tiny@nobranch", "no revision nobranch"]);

    // A port nobody listens on.
    let closed = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let nowhere = [("HF_ENDPOINT", closed.as_str()), env[1]];
    assert_fails(&generate("org/tiny", &nowhere), &["org/tiny", "cannot reach", "HF_HUB_OFFLINE"]);

    // A folder that happens to be called ORG/NAME is that folder.
    let cwd = scratch_dir("hub-cwd");
    std::fs::create_dir_all(cwd.join("org")).unwrap();
    std::os::unix::fs::symlink(source_model(), cwd.join("org/tiny")).unwrap();
    hub.log();
    let out = std::process::Command::new(binary())
        .current_dir(&cwd)
        .args(["generate", "--model", "org/tiny", "--prompt", "the cat", "--max-new-tokens", "5", "--json"])
        .envs(env)
        .output()
        .unwrap();
    assert_eq!(stdout_of(&out), stdout_of(&generate(source_model().to_str().unwrap(), &[])));
    assert!(hub.log().is_empty(), "a local folder was looked up on the Hub");
}

#[test]
fn a_hub_models_chat_template_renders_a_prompt() {
    let hub = FakeHub::start();
    let chatml = "{% for message in messages %}{% if loop.first and message.role != 'system' %}\
        {{ bos_token }}<|im_start|>system\nBe brief.<|im_end|>\n{% endif %}\
        {{ '<|im_start|>' + message.role + '\n' + message.content.strip() + '<|im_end|>\n' }}{% endfor %}\
        {% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";
    let config =
        |template: &str| serde_json::json!({"bos_token": {"content": "<s>"}, "chat_template": template}).to_string();
    hub.add_repo("chat", &[("tokenizer_config.json", config(chatml))]);
    hub.add_repo(
        "strict",
        &[("tokenizer_config.json", config("{{ raise_exception('Only system prompts, please') }}"))],
    );
    let home = scratch_dir("hub-home-chat");
    let env = [("HF_ENDPOINT", hub.endpoint.as_str()), ("HF_HOME", home.to_str().unwrap())];
    let render = |model: &str| {
        run_cli(&["chat", "--model", model, "--prompt", " Hi ", "--input", "there", "--render-only"], &env)
    };

    let out = render("org/chat");
    assert_eq!(
        stdout_of(&out),
        "<s><|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi \n\nthere<|im_end|>\n<|im_start|>assistant\n"
    );
    assert_fails(&render("org/strict"), &["chat template", "Only system prompts, please"]);
    assert_fails(&render("org/tiny"), &["has no chat template"]);
}

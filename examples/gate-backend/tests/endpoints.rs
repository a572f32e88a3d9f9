//! Every endpoint over a real loopback socket, as voice-ua calls them: one POST with the
//! function arguments as JSON, `Connection: close`.

use std::net::SocketAddr;

use gate_backend::{serve, Config};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A fresh backend (fresh in-memory state) on an ephemeral loopback port.
async fn start(api_key: Option<&str>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let config = Config { api_key: api_key.map(str::to_owned), log: false };
    tokio::spawn(serve(listener, config));
    addr
}

/// Send `raw` and return the status and the JSON body.
async fn exchange(addr: SocketAddr, raw: &[u8]) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(raw).await.expect("write");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.expect("read");
    let text = String::from_utf8(reply).expect("UTF-8 reply");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head and a body");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status code");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.parse().ok())
        .expect("Content-Length");
    assert_eq!(length, body.len(), "Content-Length matches the body");
    let json = serde_json::from_str(body).expect("a JSON body");
    (status, head.to_owned(), json)
}

async fn post_raw(addr: SocketAddr, path: &str, headers: &str, body: &str) -> (u16, Value) {
    let raw = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let (status, _, json) = exchange(addr, raw.as_bytes()).await;
    (status, json)
}

/// POST `args` to `/<function>` and expect a 200.
async fn call(addr: SocketAddr, function: &str, args: Value) -> Value {
    let (status, reply) = post_raw(addr, &format!("/{function}"), "", &args.to_string()).await;
    assert_eq!(status, 200, "{function} answered {reply}");
    reply
}

fn reason(reply: &Value) -> &str {
    reply["reason"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn health_lists_the_functions() {
    let addr = start(None).await;
    let (status, _, reply) = exchange(addr, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 200);
    assert_eq!(reply["ok"], true);
    assert_eq!(reply["functions"].as_array().map(Vec::len), Some(6));
}

#[tokio::test]
async fn check_visitor_expected_and_not() {
    let addr = start(None).await;
    let yes =
        call(addr, "check_visitor", json!({ "visitor_name": "Carlos Ruiz", "visiting": "Ana Garcia" })).await;
    assert_eq!(yes["ok"], true);
    assert_eq!(yes["expected"], true);
    assert_eq!(yes["resident"], "Ana García");
    assert!(yes["note"].as_str().is_some_and(|n| n.contains("plumber")));

    let accents =
        call(addr, "check_visitor", json!({ "visitor_name": "maria lopez", "visiting": "7c" })).await;
    assert_eq!(accents["ok"], true, "accents and case do not matter: {accents}");

    let plate = json!({ "visitor_name": "Carlos Ruiz", "visiting": "4B", "plate": "abc-123" });
    assert_eq!(call(addr, "check_visitor", plate).await["plate_matches"], true);
    let other_plate = json!({ "visitor_name": "Carlos Ruiz", "visiting": "4B", "plate": "ZZZ999" });
    assert_eq!(call(addr, "check_visitor", other_plate).await["plate_matches"], false);

    let no = call(addr, "check_visitor", json!({ "visitor_name": "Pedro Páramo", "visiting": "4B" })).await;
    assert_eq!(no["ok"], false);
    assert_eq!(no["expected"], false);
    assert!(reason(&no).contains("not expected"), "{no}");

    let wrong_host =
        call(addr, "check_visitor", json!({ "visitor_name": "Carlos Ruiz", "visiting": "12A" })).await;
    assert_eq!(wrong_host["ok"], false);
    assert!(reason(&wrong_host).contains("not expected by that resident"), "{wrong_host}");

    let first_only = call(addr, "check_visitor", json!({ "visitor_name": "Carlos", "visiting": "4B" })).await;
    assert_eq!(first_only["ok"], false);
    assert!(reason(&first_only).contains("first and last name"), "{first_only}");

    let missing = call(addr, "check_visitor", json!({ "visiting": "4B" })).await;
    assert_eq!(missing["ok"], false);
    assert!(reason(&missing).contains("visitor_name"), "{missing}");
}

#[tokio::test]
async fn find_resident_by_name_or_unit() {
    let addr = start(None).await;
    let one = call(addr, "find_resident", json!({ "name": "Mrs. García" })).await;
    assert_eq!(one["ok"], true);
    assert_eq!(one["matches"], json!([{ "resident": "Ana García", "unit": "4B" }]));

    let by_unit = call(addr, "find_resident", json!({ "unit": "apartment 12 a" })).await;
    assert_eq!(by_unit["matches"][0]["resident"], "John Miller");

    let two = call(addr, "find_resident", json!({ "name": "Ana" })).await;
    assert_eq!(two["matches"].as_array().map(Vec::len), Some(2));
    assert!(two["note"].as_str().is_some_and(|n| n.contains("ask the caller which one")));

    let none = call(addr, "find_resident", json!({ "name": "Smith" })).await;
    assert_eq!(none["ok"], false);
    assert!(reason(&none).contains("spell"), "{none}");

    let empty = call(addr, "find_resident", json!({})).await;
    assert_eq!(empty["ok"], false);
}

#[tokio::test]
async fn notify_resident_approves_declines_or_no_answer() {
    let addr = start(None).await;
    let approved =
        call(addr, "notify_resident", json!({ "resident": "Robert Chen", "visitor_name": "Dana White" }))
            .await;
    assert_eq!(approved["ok"], true);
    assert_eq!(approved["approved"], true);

    let declined =
        call(addr, "notify_resident", json!({ "resident": "7C", "visitor_name": "Dana White" })).await;
    assert_eq!(declined["ok"], false);
    assert_eq!(declined["answered"], true);
    assert!(reason(&declined).contains("do not open"), "{declined}");

    let silent =
        call(addr, "notify_resident", json!({ "resident": "John Miller", "visitor_name": "Dana White" }))
            .await;
    assert_eq!(silent["ok"], false);
    assert_eq!(silent["answered"], false);
    assert!(reason(&silent).contains("guard"), "{silent}");

    let ambiguous =
        call(addr, "notify_resident", json!({ "resident": "Ana", "visitor_name": "Dana White" })).await;
    assert_eq!(ambiguous["ok"], false);
    assert!(reason(&ambiguous).contains("several residents"), "{ambiguous}");
}

#[tokio::test]
async fn open_gate_only_after_a_positive_check() {
    let addr = start(None).await;
    let refused = call(addr, "open_gate", json!({ "gate": "main", "visitor_name": "Carlos Ruiz" })).await;
    assert_eq!(refused["ok"], false);
    assert!(reason(&refused).contains("no positive check"), "{refused}");

    call(addr, "check_visitor", json!({ "visitor_name": "Carlos Ruiz", "visiting": "4B" })).await;
    let opened = call(addr, "open_gate", json!({ "gate": "main", "visitor_name": "Carlos Ruiz" })).await;
    assert_eq!(opened["ok"], true, "{opened}");
    assert_eq!(opened["gate"], "main");
    assert_eq!(opened["opened_for_seconds"], 5);
    assert_eq!(opened["visiting"], "Ana García");

    // A declined visitor stays out; an approved one gets in.
    call(addr, "notify_resident", json!({ "resident": "7C", "visitor_name": "Eve Stone" })).await;
    let still_shut =
        call(addr, "open_gate", json!({ "gate": "pedestrian", "visitor_name": "Eve Stone" })).await;
    assert_eq!(still_shut["ok"], false);
    call(addr, "notify_resident", json!({ "resident": "2A", "visitor_name": "Eve Stone" })).await;
    let approved =
        call(addr, "open_gate", json!({ "gate": "pedestrian", "visitor_name": "eve stone" })).await;
    assert_eq!(approved["ok"], true, "{approved}");

    let garage = call(addr, "open_gate", json!({ "gate": "Garage", "visitor_name": "Carlos Ruiz" })).await;
    assert_eq!(garage["opened_for_seconds"], 20);

    let unknown = call(addr, "open_gate", json!({ "gate": "roof", "visitor_name": "Carlos Ruiz" })).await;
    assert_eq!(unknown["ok"], false);
    assert!(reason(&unknown).contains("unknown gate"), "{unknown}");

    // A first name alone does not borrow someone else's clearance.
    let partial = call(addr, "open_gate", json!({ "gate": "main", "visitor_name": "Carlos" })).await;
    assert_eq!(partial["ok"], false);
}

#[tokio::test]
async fn get_recent_plates_newest_first() {
    let addr = start(None).await;
    let all = call(addr, "get_recent_plates", json!({})).await;
    assert_eq!(all["ok"], true);
    let plates = all["plates"].as_array().cloned().unwrap_or_default();
    assert_eq!(plates.len(), 4);
    assert_eq!(plates[0]["plate"], "ABC123");
    assert_eq!(plates[0]["expected_visitor"], "Carlos Ruiz");
    assert_eq!(plates[0]["minutes_ago"], 0);
    assert!(plates.windows(2).all(|w| w[0]["minutes_ago"].as_u64() <= w[1]["minutes_ago"].as_u64()));

    let two = call(addr, "get_recent_plates", json!({ "limit": 2 })).await;
    assert_eq!(two["plates"].as_array().map(Vec::len), Some(2));

    let one = call(addr, "get_recent_plates", json!({ "plate": "xyz 789" })).await;
    assert_eq!(
        one["plates"],
        json!([{ "plate": "XYZ789", "gate": "main", "minutes_ago": 25, "expected_visitor": "María López" }])
    );

    let unseen = call(addr, "get_recent_plates", json!({ "plate": "NOPE000" })).await;
    assert_eq!(unseen["ok"], false);
    assert!(reason(&unseen).contains("not read"), "{unseen}");
}

#[tokio::test]
async fn register_visitor_numbers_visits() {
    let addr = start(None).await;
    call(addr, "check_visitor", json!({ "visitor_name": "Sarah Johnson", "visiting": "John Miller" })).await;
    let first = call(
        addr,
        "register_visitor",
        json!({ "visitor_name": "Sarah Johnson", "resident": "12A", "purpose": "family visit" }),
    )
    .await;
    assert_eq!(first["ok"], true);
    assert_eq!(first["visit_id"], "V-1001");
    assert_eq!(first["resident"], "John Miller");
    assert_eq!(first["checked"], true);
    assert_eq!(first["purpose"], "family visit");

    let second = call(
        addr,
        "register_visitor",
        json!({ "visitor_name": "Tom Lee", "resident": "Robert Chen", "plate": "jkr-221" }),
    )
    .await;
    assert_eq!(second["visit_id"], "V-1002");
    assert_eq!(second["checked"], false);
    assert_eq!(second["plate"], "JKR221");

    let nobody = call(addr, "register_visitor", json!({ "visitor_name": "Tom Lee" })).await;
    assert_eq!(nobody["ok"], false);
    assert!(reason(&nobody).contains("missing resident"), "{nobody}");
}

#[tokio::test]
async fn bad_json_is_400_with_a_reason() {
    let addr = start(None).await;
    for tool in ["check_visitor", "open_gate", "get_recent_plates"] {
        let (status, reply) = post_raw(addr, &format!("/{tool}"), "", "{\"gate\": ").await;
        assert_eq!(status, 400, "{tool}");
        assert_eq!(reply["ok"], false);
        assert!(reason(&reply).contains("not valid JSON"), "{reply}");
    }
    let (status, reply) = post_raw(addr, "/open_gate", "", "[\"main\"]").await;
    assert_eq!(status, 400);
    assert!(reason(&reply).contains("JSON object"), "{reply}");

    let (status, reply) = post_raw(addr, "/open_gate", "", "").await;
    assert_eq!(status, 400, "an empty body is not an argument object: {reply}");

    let (status, _, reply) = exchange(addr, b"BROKEN\r\n\r\n").await;
    assert_eq!(status, 400);
    assert!(reason(&reply).contains("malformed"), "{reply}");
}

#[tokio::test]
async fn wrong_or_missing_key_is_401() {
    let addr = start(Some("example-key")).await;
    let args = json!({ "name": "Garcia" }).to_string();
    let (status, reply) = post_raw(addr, "/find_resident", "X-Api-Key: wrong-key\r\n", &args).await;
    assert_eq!(status, 401);
    assert_eq!(reply["ok"], false);
    assert!(reason(&reply).contains("X-Api-Key"), "{reply}");

    let (status, _) = post_raw(addr, "/find_resident", "", &args).await;
    assert_eq!(status, 401);

    // The key is checked before the body: a wrong key with bad JSON is still 401.
    let (status, _) = post_raw(addr, "/find_resident", "X-Api-Key: nope\r\n", "{").await;
    assert_eq!(status, 401);

    let (status, reply) = post_raw(addr, "/find_resident", "x-api-key: example-key\r\n", &args).await;
    assert_eq!(status, 200);
    assert_eq!(reply["ok"], true);
}

#[tokio::test]
async fn wrong_method_path_and_size() {
    let addr = start(None).await;
    let (status, head, reply) = exchange(addr, b"GET /open_gate HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 405);
    assert!(head.contains("\r\nAllow: POST"), "{head}");
    assert!(reason(&reply).contains("POST"));

    let (status, reply) = post_raw(addr, "/launch_rocket", "", "{}").await;
    assert_eq!(status, 404);
    assert!(reason(&reply).contains("/open_gate"), "the 404 lists the endpoints: {reply}");

    let raw = b"POST /open_gate HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000\r\n\r\n";
    let (status, _, _) = exchange(addr, raw).await;
    assert_eq!(status, 413);

    let raw =
        b"POST /open_gate HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    let (status, _, _) = exchange(addr, raw).await;
    assert_eq!(status, 411);
}

#[tokio::test]
async fn expect_100_continue_is_answered() {
    let addr = start(None).await;
    let body = json!({ "name": "Chen" }).to_string();
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "POST /find_resident HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).await.expect("100 Continue");
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(body.as_bytes()).await.expect("write body");
    let mut reply = String::new();
    stream.read_to_string(&mut reply).await.expect("read");
    assert!(reply.starts_with("HTTP/1.1 200 OK"), "{reply}");
    assert!(reply.contains("Robert Chen"), "{reply}");
}

/// Every `http` function in the example configuration points at an endpoint served here,
/// and every endpoint here is used by the configuration.
#[test]
fn the_example_config_matches_the_endpoints() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../gate-concierge/voice-ua.toml");
    let config = std::fs::read_to_string(path).expect("examples/gate-concierge/voice-ua.toml");
    let urls: Vec<&str> = config
        .lines()
        .map(str::trim)
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.strip_prefix("url = \"http://127.0.0.1:8088/"))
        .filter_map(|rest| rest.strip_suffix('"'))
        .collect();
    let mut sorted_urls = urls.clone();
    sorted_urls.sort_unstable();
    let mut tools = gate_backend::gate::TOOLS.to_vec();
    tools.sort_unstable();
    assert_eq!(sorted_urls, tools, "function URLs in {path}");
    for tool in tools {
        assert!(config.contains(&format!("name = \"{tool}\"")), "{tool} is named in {path}");
    }
}

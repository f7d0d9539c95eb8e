//! One connection: reading requests off it and answering them, with the misbehaviours
//! [`OriginBehaviour`](super::OriginBehaviour) switches on.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use device_fw::wire::report::MAX_REPORT;

use super::OriginShared;
use super::conditional::{http_date, not_modified};
use super::request::{Parse, Request, parse_range, parse_request};
use crate::net::Connection;
use crate::time;

/// What every response carries, as Apache sends it.
const SERVER_HEADERS: &str = "Date: Tue, 24 Nov 2026 03:00:00 GMT\r\nServer: Apache/2.4.62 (Debian)\r\n";

/// Reads more of the request into `pending`; `false` when the connection is over (closed,
/// or idle past the keep-alive timeout, which closes it).
async fn read_more(conn: &mut Connection, buf: &mut [u8], pending: &mut Vec<u8>, shared: &OriginShared) -> bool {
    let ka = shared.behaviour.lock().expect("origin lock").keep_alive_timeout;
    match time::timeout(ka, conn.read(buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => false,
        Ok(Ok(n)) => {
            pending.extend_from_slice(&buf[..n]);
            true
        }
        Err(_) => {
            conn.shutdown();
            false
        }
    }
}

pub(super) async fn serve_connection(mut conn: Connection, shared: Arc<OriginShared>) {
    let mut pending: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 2048];
    loop {
        let (req, used) = loop {
            match parse_request(&pending) {
                Parse::Done(req, n) => break (req, n),
                Parse::Bad => {
                    let _ = conn
                        .write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                        .await;
                    conn.shutdown();
                    return;
                }
                Parse::Partial => {}
            }
            if !read_more(&mut conn, &mut buf, &mut pending, &shared).await {
                return;
            }
        };
        // A body this origin cannot delimit or will not hold ends the connection: what
        // follows it could not be told from the next request.
        let refusal = match req.body_len {
            Err(()) => Some("411 Length Required"),
            Ok(n) if n > MAX_REPORT => Some("413 Content Too Large"),
            Ok(_) => None,
        };
        if let Some(status) = refusal {
            let head = format!("HTTP/1.1 {status}\r\n{SERVER_HEADERS}Content-Length: 0\r\nConnection: close\r\n\r\n");
            let _ = conn.write(head.as_bytes()).await;
            conn.shutdown();
            return;
        }
        let end = used + req.body_len.unwrap_or(0);
        while pending.len() < end {
            if !read_more(&mut conn, &mut buf, &mut pending, &shared).await {
                return;
            }
        }
        let body: Vec<u8> = pending.drain(..end).skip(used).collect();
        if respond(&conn, &req, body, &shared).await.is_err() {
            return;
        }
        if req.close {
            conn.shutdown();
            return;
        }
    }
}

async fn respond(
    conn: &Connection,
    req: &Request,
    body: Vec<u8>,
    shared: &OriginShared,
) -> Result<(), crate::pipe::PipeError> {
    let c = &shared.counters;
    c.requests.fetch_add(1, Ordering::Relaxed);
    if req.range.is_some() {
        c.range_requests.fetch_add(1, Ordering::Relaxed);
    }
    let conn_header = if req.close { "close" } else { "keep-alive" };
    let (fail, ignore_range, rate, redirect, report_path, post_reply) = {
        let mut b = shared.behaviour.lock().expect("origin lock");
        let fail = b.fail_next > 0;
        b.fail_next = b.fail_next.saturating_sub(1);
        let transient = b.ignore_range_next > 0 && req.range.is_some();
        if transient {
            b.ignore_range_next -= 1;
        }
        (
            fail,
            b.ignore_range || transient,
            b.rate_limit,
            b.redirects.get(&req.path).cloned(),
            b.report_path.clone(),
            b.post_reply.clone(),
        )
    };
    if fail {
        c.errors_5xx.fetch_add(1, Ordering::Relaxed);
        let body = "Service Unavailable\n";
        let head = format!(
            "HTTP/1.1 503 Service Unavailable\r\n{SERVER_HEADERS}Content-Length: {}\r\nConnection: {conn_header}\r\n\r\n{body}",
            body.len()
        );
        return conn.write(head.as_bytes()).await;
    }
    if let Some(location) = redirect {
        let head = format!(
            "HTTP/1.1 302 Found\r\n{SERVER_HEADERS}Location: {location}\r\nContent-Length: 0\r\nConnection: {conn_header}\r\n\r\n"
        );
        return conn.write(head.as_bytes()).await;
    }
    if req.method == "POST" {
        let (status, reply) = if req.path == report_path {
            c.reports.fetch_add(1, Ordering::Relaxed);
            shared.reports.lock().expect("origin lock").push(body);
            if post_reply.is_empty() {
                ("202 Accepted", post_reply)
            } else {
                ("200 OK", post_reply)
            }
        } else {
            ("405 Method Not Allowed\r\nAllow: GET, HEAD", Vec::new())
        };
        let mut response = format!(
            "HTTP/1.1 {status}\r\n{SERVER_HEADERS}Content-Length: {}\r\nConnection: {conn_header}\r\n\r\n",
            reply.len()
        )
        .into_bytes();
        response.extend_from_slice(&reply);
        return conn.write(&response).await;
    }
    let object = shared
        .store
        .lock()
        .expect("origin lock")
        .objects
        .get(&req.path)
        .cloned();
    let Some(object) = object else {
        let head =
            format!("HTTP/1.1 404 Not Found\r\n{SERVER_HEADERS}Content-Length: 0\r\nConnection: {conn_header}\r\n\r\n");
        return conn.write(head.as_bytes()).await;
    };
    // Conditions come before Range (RFC 9110 §13.2.2); a 304 has no body, and Apache sends
    // only the ETag of the two validators with it.
    if not_modified(req, &object) {
        c.not_modified.fetch_add(1, Ordering::Relaxed);
        let head = format!(
            "HTTP/1.1 304 Not Modified\r\n{SERVER_HEADERS}ETag: {}\r\nKeep-Alive: timeout=5, max=100\r\nConnection: {conn_header}\r\n\r\n",
            object.etag
        );
        return conn.write(head.as_bytes()).await;
    }
    let validators = format!(
        "Last-Modified: {}\r\nETag: {}\r\nAccept-Ranges: bytes\r\n",
        http_date(object.modified),
        object.etag
    );
    let file = &object.data;
    let len = file.len() as u64;
    // A Range under an If-Range that is not this version would splice two versions of the
    // object together: the whole object instead.
    let stale_range = req.if_range.as_deref().is_some_and(|v| v.trim() != object.etag);
    let range = if ignore_range || stale_range {
        None
    } else {
        req.range.as_deref().and_then(|r| parse_range(r, len))
    };
    let (status, start, end) = match range {
        Some(Ok((a, b))) => ("206 Partial Content", a, b),
        Some(Err(())) => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\n{SERVER_HEADERS}Content-Range: bytes */{len}\r\nContent-Length: 0\r\nConnection: {conn_header}\r\n\r\n"
            );
            return conn.write(head.as_bytes()).await;
        }
        None => ("200 OK", 0, len.saturating_sub(1)),
    };
    let body = if len == 0 {
        &file[..0]
    } else {
        &file[start as usize..=end as usize]
    };
    let content_range = if range.is_some() {
        format!("Content-Range: bytes {start}-{end}/{len}\r\n")
    } else {
        String::new()
    };
    let head = format!(
        "HTTP/1.1 {status}\r\n{SERVER_HEADERS}{validators}Content-Length: {}\r\n{content_range}Keep-Alive: timeout=5, max=100\r\nConnection: {conn_header}\r\nContent-Type: application/octet-stream\r\n\r\n",
        body.len()
    );
    if range.is_some() { &c.partial } else { &c.full }.fetch_add(1, Ordering::Relaxed);
    conn.write(head.as_bytes()).await?;
    match rate {
        None => conn.write(body).await?,
        Some(rate) => {
            // mod_ratelimit sends in small bursts, eight a second.
            let piece = (rate as usize / 8).max(1);
            for part in body.chunks(piece) {
                conn.write(part).await?;
                time::sleep(Duration::from_millis(125)).await;
            }
        }
    }
    c.body_bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
    Ok(())
}

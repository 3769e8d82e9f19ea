//! Talking to the daemon from hooks and commands, with std's blocking sockets: a hook must not
//! pay for starting an async runtime, and every call is bounded by a timeout so a wedged daemon
//! never holds git.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use super::protocol::{Request, Response};
use crate::state::State;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("no dockwarm daemon is running (start one with `dockwarm daemon start`)")]
    NotRunning,
    #[error("the dockwarm daemon did not answer: {0}")]
    NoAnswer(String),
    #[error("the dockwarm daemon refused: {0}")]
    Refused(String),
}

fn connect(state: &State, timeout: Duration) -> Result<UnixStream, ClientError> {
    // A unix socket connects at once or fails at once (no listener: ECONNREFUSED or ENOENT), so
    // only reads and writes need the timeout.
    let stream =
        UnixStream::connect(super::socket_path(state)).map_err(|_| ClientError::NotRunning)?;
    let _ = stream.set_write_timeout(Some(timeout));
    let _ = stream.set_read_timeout(Some(timeout));
    Ok(stream)
}

fn line(request: &Request) -> Vec<u8> {
    let mut text = serde_json::to_vec(request).unwrap_or_default();
    text.push(b'\n');
    text
}

/// Sends a request and waits (at most `timeout`) for its answer.
pub fn request(
    state: &State,
    request: &Request,
    timeout: Duration,
) -> Result<Response, ClientError> {
    let mut stream = connect(state, timeout)?;
    stream
        .write_all(&line(request))
        .map_err(|e| ClientError::NoAnswer(e.to_string()))?;
    let mut answer = String::new();
    BufReader::new(&stream)
        .read_line(&mut answer)
        .map_err(|e| ClientError::NoAnswer(e.to_string()))?;
    if answer.trim().is_empty() {
        return Err(ClientError::NoAnswer("the connection closed".into()));
    }
    let response: Response =
        serde_json::from_str(&answer).map_err(|e| ClientError::NoAnswer(e.to_string()))?;
    if !response.ok {
        return Err(ClientError::Refused(
            response.error.unwrap_or_else(|| "no reason given".into()),
        ));
    }
    Ok(response)
}

/// Hands a request to the daemon without waiting for its answer: what hooks use, since the
/// daemon reads every accepted connection and the hook's budget is a few milliseconds. Ok
/// means the request is in the daemon's socket buffer.
pub fn send(state: &State, request: &Request) -> Result<(), ClientError> {
    let mut stream = connect(state, Duration::from_millis(20))?;
    stream
        .write_all(&line(request))
        .map_err(|e| ClientError::NoAnswer(e.to_string()))?;
    let _ = stream.shutdown(std::net::Shutdown::Write);
    Ok(())
}

/// Whether a daemon answers on the socket.
pub fn ping(state: &State) -> Option<Response> {
    request(state, &Request::Ping, Duration::from_millis(500)).ok()
}

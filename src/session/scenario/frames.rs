//! Writing what a scenario asks for: replies split into frames (`?fragment=`), and the
//! download (`?send_bytes=`), written from one static buffer.

use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Bytes, Message};

use super::super::Session;
use super::super::end::End;

/// Zeros for `?send_bytes`: a download is written from this one static buffer, in frames of
/// at most its size, so it costs the server no memory per connection.
static ZEROS: [u8; 1 << 20] = [0; 1 << 20];

/// Writes one reply, as frames of at most `fragment` payload bytes when asked.
pub(super) async fn send_reply(
    session: &mut Session<'_>,
    reply: Message,
    fragment: Option<usize>,
) -> Result<(), End> {
    let (opcode, payload) = match (&reply, fragment) {
        (Message::Text(text), Some(_)) => (Data::Text, Bytes::from(text.clone())),
        (Message::Binary(bytes), Some(_)) => (Data::Binary, bytes.clone()),
        _ => return session.deliver(reply).await,
    };
    send_fragmented(session, opcode, payload, fragment.unwrap_or(usize::MAX)).await
}

/// Writes one message of `payload` as frames of at most `size` payload bytes each.
async fn send_fragmented(
    session: &mut Session<'_>,
    opcode: Data,
    payload: Bytes,
    size: usize,
) -> Result<(), End> {
    let size = size.max(1);
    let mut offset = 0;
    loop {
        let end = payload.len().min(offset + size);
        let first = offset == 0;
        let last = end == payload.len();
        let opcode = if first {
            OpCode::Data(opcode)
        } else {
            OpCode::Data(Data::Continue)
        };
        let frame = Frame::message(payload.slice(offset..end), opcode, last);
        session.deliver(Message::Frame(frame)).await?;
        if last {
            return Ok(());
        }
        offset = end;
    }
}

/// `?send_bytes=N`: one binary message of N zero bytes, written from a static buffer.
pub(super) async fn send_download(
    session: &mut Session<'_>,
    size: usize,
    fragment: Option<usize>,
) -> Result<(), End> {
    let frame_size = fragment.unwrap_or(ZEROS.len()).min(ZEROS.len());
    if size <= frame_size {
        let payload = Bytes::from_static(&ZEROS[..size]);
        session.deliver(Message::Binary(payload)).await?;
        return session.flush().await;
    }
    let mut sent = 0;
    while sent < size {
        let length = (size - sent).min(frame_size);
        let opcode = if sent == 0 {
            OpCode::Data(Data::Binary)
        } else {
            OpCode::Data(Data::Continue)
        };
        let frame = Frame::message(
            Bytes::from_static(&ZEROS[..length]),
            opcode,
            sent + length == size,
        );
        session.deliver(Message::Frame(frame)).await?;
        sent += length;
    }
    session.flush().await
}

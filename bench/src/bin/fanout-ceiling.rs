//! The fan-out ceiling: a room that every connection joins, with no WebSocket library at
//! all. The upgrade is a canned `101` (the load generator does not check the accept key);
//! each client frame read is unmasked, framed once for the server side, and its bytes are
//! queued on every member; each member's task writes everything queued with one write per
//! drain. What is left between this and a WebSocket server's broadcast is the library's
//! work and the server's own bookkeeping.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::Notify;

/// One member's queue of server frames waiting to be written, and its writer's wake-up.
struct Member {
    queued: RefCell<VecDeque<Rc<[u8]>>>,
    ready: Notify,
}

thread_local! {
    static ROOM: RefCell<Vec<Rc<Member>>> = const { RefCell::new(Vec::new()) };
}

fn main() -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let listener =
            tokio::net::TcpListener::bind(("127.0.0.1", wsecho_bench::port_argument())).await?;
        eprintln!("listening on ws://{}", listener.local_addr()?);
        loop {
            let (stream, _) = listener.accept().await?;
            let _ = stream.set_nodelay(true);
            tokio::task::spawn_local(member(stream));
        }
    })
}

async fn member(mut stream: TcpStream) {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8];
        if stream.read_exact(&mut byte).await.is_err() {
            return;
        }
        head.push(byte[0]);
    }
    let upgraded =
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    if stream.write_all(upgraded).await.is_err() {
        return;
    }
    let me = Rc::new(Member {
        queued: RefCell::new(VecDeque::new()),
        ready: Notify::new(),
    });
    ROOM.with_borrow_mut(|room| room.push(me.clone()));
    let (reader, writer) = stream.into_split();
    tokio::select! {
        _ = read_frames(reader) => {}
        _ = write_queued(writer, &me) => {}
    }
    ROOM.with_borrow_mut(|room| room.retain(|member| !Rc::ptr_eq(member, &me)));
}

/// Reads the member's frames and queues each, as a server frame, on every member.
async fn read_frames(mut reader: OwnedReadHalf) {
    let mut buffer = Vec::with_capacity(64 * 1024);
    loop {
        if reader
            .read_buf(&mut buffer)
            .await
            .map_or(true, |read| read == 0)
        {
            return;
        }
        let mut start = 0;
        while let Some((frame, used)) = server_frame(&buffer[start..]) {
            start += used;
            let frame: Rc<[u8]> = frame.into();
            ROOM.with_borrow(|room| {
                for member in room {
                    member.queued.borrow_mut().push_back(frame.clone());
                    member.ready.notify_one();
                }
            });
        }
        buffer.drain(..start);
    }
}

/// Writes whatever is queued for this member, all of it in one write each time.
async fn write_queued(mut writer: OwnedWriteHalf, me: &Member) {
    let mut out = Vec::new();
    loop {
        me.ready.notified().await;
        out.clear();
        for frame in me.queued.borrow_mut().drain(..) {
            out.extend_from_slice(&frame);
        }
        if !out.is_empty() && writer.write_all(&out).await.is_err() {
            return;
        }
    }
}

/// The complete masked client frame at the start of `bytes`, reframed unmasked for the
/// server side, and how many bytes it took.
fn server_frame(bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
    let (header, length) = match *bytes.get(1)? & 0x7f {
        126 => (
            4,
            u16::from_be_bytes([*bytes.get(2)?, *bytes.get(3)?]) as usize,
        ),
        127 => (
            10,
            u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?) as usize,
        ),
        short => (2, short as usize),
    };
    let key: [u8; 4] = bytes.get(header..header + 4)?.try_into().ok()?;
    let payload = bytes.get(header + 4..header + 4 + length)?;
    let mut frame = Vec::with_capacity(header + length);
    frame.push(bytes[0]);
    frame.push(bytes[1] & 0x7f);
    frame.extend_from_slice(&bytes[2..header]);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    Some((frame, header + 4 + length))
}

//! Kill -9, over and over: the device's `heeldiary sync` process and the server are killed
//! (SIGKILL) at random moments of pushes and pulls, on every backend this run can reach. After
//! the cycles, one clean sync of each device leaves the server with every written operation once
//! and both devices with the same entries.
//!
//! A handful of cycles run in every test run; `HEELDIARY_KILL_CYCLES=100 cargo test -p
//! heeldiary-e2e --test kill_cycles -- --ignored` runs the long campaign.

use std::process::{Command, Stdio};
use std::time::Duration;

use heeldiary_e2e::{binary, op_keys, Backend, Device, Server};

fn cycles(default: usize) -> usize {
    std::env::var("HEELDIARY_KILL_CYCLES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// A small deterministic generator, so that a failing run can be repeated.
struct Dice(u64);

impl Dice {
    fn roll(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

fn kill_cycles(count: usize) {
    for backend in Backend::all("kill_cycles") {
        let mut server = Server::start(&backend);
        let port = server.port();
        let (patient, code) = server.add_patient();
        let (writer, reader) = (Device::new(), Device::new());
        writer.enrol(&server, &code);
        reader.enrol(&server, &server.new_code(&patient));
        let mut dice = Dice(0x5eed_0000_0000_0001 ^ count as u64);
        let mut written = 0;
        for cycle in 0..count {
            let import = writer.db.with_file_name(format!("cycle-{cycle}.ndjson"));
            let lines: Vec<String> = (0..200)
                .map(|i| {
                    format!(
                        r#"{{"day":"2026-10-{:02}","first_step_pain":{},"note":"c{cycle} n{i}"}}"#,
                        i % 28 + 1,
                        i % 11
                    )
                })
                .collect();
            std::fs::write(&import, lines.join("\n")).unwrap();
            writer.ok(&["import", import.to_str().unwrap()]);
            written += 200;
            let device = if dice.roll(2) == 0 { &writer } else { &reader };
            let mut sync = Command::new(binary("heeldiary"))
                .args(["sync", "--batch", "20"])
                .env("HEELDIARY_DB", &device.db)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_millis(dice.roll(120)));
            match dice.roll(3) {
                0 => {
                    let _ = sync.kill();
                }
                1 => server.kill(),
                _ => {
                    let _ = sync.kill();
                    server.kill();
                }
            }
            let _ = sync.wait();
            if server_is_down(&server) {
                server =
                    Server::start_on(server.backend_args.clone(), &format!("127.0.0.1:{port}"));
            }
        }
        for device in [&writer, &reader, &writer, &reader] {
            device.sync();
        }
        let (w, r) = (writer.store(), reader.store());
        let keys = op_keys(&w);
        assert_eq!(keys.len(), written, "{}: the writer's log", backend.name());
        assert_eq!(
            op_keys(&r),
            keys,
            "{}: the reader has every op once",
            backend.name()
        );
        assert_eq!(w.list(None, None).unwrap().len(), written);
        assert_eq!(
            w.list(None, None).unwrap(),
            r.list(None, None).unwrap(),
            "{}",
            backend.name()
        );
        assert_eq!(w.sync_state().unwrap().pending, 0);
        let third = Device::new();
        third.enrol(&server, &server.new_code(&patient));
        third.sync();
        assert_eq!(
            op_keys(&third.store()),
            keys,
            "{}: the server holds every op once",
            backend.name()
        );
    }
}

fn server_is_down(server: &Server) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", server.port())).is_err()
}

#[test]
fn a_few_kill_cycles_lose_and_double_nothing() {
    kill_cycles(cycles(4));
}

#[test]
#[ignore = "long: a hundred kill cycles per backend"]
fn a_hundred_kill_cycles_lose_and_double_nothing() {
    kill_cycles(cycles(100));
}

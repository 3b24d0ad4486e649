//! Writes a synthetic run folder: `synth DIR MESSAGES` (the report benchmark's input).

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let (Some(dir), Some(n)) = (args.get(1), args.get(2).and_then(|n| n.parse::<u64>().ok()))
    else {
        eprintln!("usage: synth DIR MESSAGES");
        return std::process::ExitCode::from(2);
    };
    match report::synth::write_run(std::path::Path::new(dir), n, report::synth::Tamper::None) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

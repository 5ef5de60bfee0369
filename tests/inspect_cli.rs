//! `scratchgpt inspect attention` and `scratchgpt inspect lens` on a char
//! model trained for a few steps: the SVG is written and well-formed, the
//! PNG decodes at the size asked for, the JSON has the promised shape and agrees with the picture, and bad input
//! is one line with exit code 2. The numbers themselves are checked against
//! `transformers` in `tests/inspect.rs`.

mod common;
use common::{fails_with, scratch_dir, scratchgpt, train_char_nano};

fn json(args: &[&str]) -> serde_json::Value {
    let out = scratchgpt(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn cells(svg: &std::path::Path) -> Vec<common::xml::Element> {
    let elements = common::xml::parse(&std::fs::read_to_string(svg).unwrap());
    elements.into_iter().filter(|e| e.attributes.get("class").map(String::as_str) == Some("cell")).collect()
}

#[test]
fn inspect_attention_and_lens_write_svg_and_json_and_refuse_bad_input() {
    let dir = scratch_dir("inspect-cli");
    let run = train_char_nano(&dir, "hello world, hello there. ");
    let model = run.to_str().unwrap();
    let prompt = "hello w";
    let t = prompt.chars().count();
    let svg = dir.join("attention.svg");
    let svg_arg = svg.to_str().unwrap();

    // One layer and head: one T × T map, rows summing to 1, future zero.
    let v = json(&[
        "inspect",
        "attention",
        "--model",
        model,
        "--prompt",
        prompt,
        "--layer",
        "1",
        "--head",
        "1",
        "--out",
        svg_arg,
        "--json",
    ]);
    assert_eq!(v["layers"], serde_json::json!([1]));
    assert_eq!(v["heads"], serde_json::json!([1]));
    assert_eq!(v["tokens"].as_array().unwrap().len(), t);
    assert_eq!(v["tokens"][5], " ");
    let map = v["weights"][0][0].as_array().unwrap();
    assert_eq!(map.len(), t);
    for (q, row) in map.iter().enumerate() {
        let row: Vec<f64> = row.as_array().unwrap().iter().map(|w| w.as_f64().unwrap()).collect();
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-5);
        assert!(row[q + 1..].iter().all(|&w| w == 0.0));
    }
    assert_eq!(cells(&svg).len(), t * t);

    // Every layer and head by default.
    let out = scratchgpt(&["inspect", "attention", "--model", model, "--prompt", prompt, "--out", svg_arg]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap();
    let (layers, heads) = (config["n_layer"].as_u64().unwrap(), config["n_head"].as_u64().unwrap());
    assert_eq!(cells(&svg).len() as u64, layers * heads * (t * t) as u64);

    // The lens: per layer and position the top K, likeliest first; the
    // picture writes the top token of each cell.
    let lens_svg = dir.join("lens.svg");
    let v = json(&[
        "inspect",
        "lens",
        "--model",
        model,
        "--prompt",
        prompt,
        "--top",
        "3",
        "--out",
        lens_svg.to_str().unwrap(),
        "--json",
    ]);
    let top = v["top"].as_array().unwrap();
    assert_eq!(top.len() as u64, layers);
    for row in top {
        assert_eq!(row.as_array().unwrap().len(), t);
        for guesses in row.as_array().unwrap() {
            let probs: Vec<f64> = guesses.as_array().unwrap().iter().map(|g| g["prob"].as_f64().unwrap()).collect();
            assert_eq!(probs.len(), 3);
            assert!(probs.windows(2).all(|p| p[0] >= p[1]) && probs[0] <= 1.0);
        }
    }
    assert_eq!(cells(&lens_svg).len() as u64, layers * t as u64);

    // Bad input: one line, exit code 2, nothing panics.
    let out_arg = dir.join("bad.svg");
    let out_arg = out_arg.to_str().unwrap();
    let base = ["inspect", "attention", "--model", model, "--out", out_arg];
    fails_with(&[&base[..], &["--prompt", prompt, "--layer", "9"]].concat(), "--layer 9 is out of range");
    fails_with(&[&base[..], &["--prompt", prompt, "--head", "99"]].concat(), "--head 99 is out of range");
    fails_with(&[&base[..], &["--prompt", ""]].concat(), "the prompt is empty");
    let long = "hello ".repeat(200);
    fails_with(&["inspect", "lens", "--model", model, "--out", out_arg, "--prompt", &long], "context holds");
    fails_with(&["inspect", "lens", "--model", model, "--out", out_arg, "--prompt", prompt, "--top", "0"], "--top");
    assert!(!dir.join("bad.svg").exists());

    // --out replaces only a picture this program drew: not a model's file,
    // nothing inside the model folder, not the user's own SVG (without --force).
    let config = run.join("config.json");
    let before = std::fs::read(&config).unwrap();
    let lens = |out: &std::path::Path, force: bool| -> Vec<String> {
        let mut args = vec!["inspect", "lens", "--model", model, "--prompt", prompt, "--out", out.to_str().unwrap()];
        if force {
            args.push("--force");
        }
        args.into_iter().map(String::from).collect()
    };
    let refused = |out: &std::path::Path, needle: &str| {
        fails_with(&lens(out, false).iter().map(String::as_str).collect::<Vec<_>>(), needle)
    };
    let run_lens = |out: &std::path::Path, force: bool| {
        let output = scratchgpt(&lens(out, force).iter().map(String::as_str).collect::<Vec<_>>());
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    };
    refused(&config, "FILE.svg");
    refused(&run.join("lens.svg"), "is inside the input");
    assert_eq!(std::fs::read(&config).unwrap(), before, "the model's config is untouched");
    let mine = dir.join("mine.svg");
    std::fs::write(&mine, "<svg>my drawing</svg>").unwrap();
    refused(&mine, "not a picture this program drew");
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "<svg>my drawing</svg>");
    let ours = dir.join("ours.svg");
    for force in [false, false, true] {
        run_lens(&ours, force);
    }
    run_lens(&mine, true);
    let out = scratchgpt(&["inspect", "lens", "--model", model, "--prompt", prompt, "--out", mine.to_str().unwrap()]);
    assert!(out.status.success() && std::fs::read_to_string(&mine).unwrap().contains("drawn by scratchgpt"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Width, height and RGBA pixels of a PNG file, and its `Comment` text.
fn decode_png(path: &std::path::Path) -> (u32, u32, Vec<u8>, String) {
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    assert_eq!(frame.color_type, png::ColorType::Rgba);
    let comment = reader.info().uncompressed_latin1_text.iter().find(|t| t.keyword == "Comment").unwrap();
    (frame.width, frame.height, pixels, comment.text.clone())
}

#[test]
fn inspect_draws_png_at_the_width_asked_and_refuses_what_does_not_fit() {
    let dir = scratch_dir("inspect-png");
    let run = train_char_nano(&dir, "hello world, hello there. ");
    let model = run.to_str().unwrap();
    let (svg, png) = (dir.join("lens.svg"), dir.join("lens.png"));
    let lens = |out: &std::path::Path, extra: &[&str]| {
        let args = [&["inspect", "lens", "--model", model, "--prompt", "hello", "--out", out.to_str().unwrap()], extra];
        let output = scratchgpt(&args.concat());
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    };

    // The PNG is the SVG's drawing: the same proportions, at --width.
    lens(&svg, &[]);
    let root = &common::xml::parse(&std::fs::read_to_string(&svg).unwrap())[0];
    let size = |name: &str| root.attributes[name].trim_end_matches("px").parse::<f64>().unwrap();
    lens(&png, &["--width", "640"]);
    let (width, height, pixels, comment) = decode_png(&png);
    assert_eq!(width, 640);
    assert_eq!(height, (640.0 * size("height") / size("width")).round() as u32);
    assert!(comment.contains("drawn by scratchgpt"));
    // Cells, labels and a white page: neither blank nor all ink.
    let dark = pixels.chunks(4).filter(|p| p[0] < 100 && p[1] < 100 && p[2] < 100).count();
    let white = pixels.chunks(4).filter(|p| p[..3] == [255, 255, 255]).count();
    let total = (width * height) as usize;
    assert!(dark > total / 200 && white > total / 4, "dark {dark}, white {white} of {total} pixels");
    // By default twice the SVG's width; --format png names the format when
    // the file's name does not. A PNG of ours is replaced without --force.
    lens(&png, &[]);
    assert_eq!(decode_png(&png).0 as f64, 2.0 * size("width"));
    let unnamed = dir.join("lens.picture");
    lens(&unnamed, &["--format", "png", "--width", "100"]);
    assert_eq!(decode_png(&unnamed).0, 100);

    // Bad input: one line, exit 2, nothing written.
    let base = ["inspect", "lens", "--model", model, "--prompt", "hello", "--out"];
    let bad = dir.join("bad.png");
    let bad_arg = bad.to_str().unwrap();
    fails_with(&[&base[..], &[bad_arg, "--width", "0"]].concat(), "--width 0");
    fails_with(&[&base[..], &[bad_arg, "--format", "svg"]].concat(), "--format svg but the file's name ends in .png");
    fails_with(&[&base[..], &[svg.to_str().unwrap(), "--width", "300"]].concat(), "--width sets a PNG's size");
    fails_with(&[&base[..], &[dir.join("bad.jpg").to_str().unwrap()]].concat(), "FILE.svg or FILE.png");
    assert!(!bad.exists());
    let theirs = dir.join("photo.png");
    std::fs::write(&theirs, b"\x89PNG not ours").unwrap();
    fails_with(&[&base[..], &[theirs.to_str().unwrap()]].concat(), "not a picture this program drew");
    assert_eq!(std::fs::read(&theirs).unwrap(), b"\x89PNG not ours");
    let _ = std::fs::remove_dir_all(&dir);
}

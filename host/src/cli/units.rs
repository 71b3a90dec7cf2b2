//! Sizes and rates as operators write them: `1M`, `64KiB`, `100MB/s`, `102Mbps`.

/// Parses a size in bytes: a number with an optional unit, decimal (`K`, `M`,
/// `G`, also `KB`…) or binary (`KiB`, `MiB`, `GiB`).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size (e.g. 1M, 64KiB, 4096)"))?;
    let factor: f64 = match unit.trim() {
        "" | "B" => 1.0,
        "K" | "KB" | "k" | "kB" => 1e3,
        "M" | "MB" => 1e6,
        "G" | "GB" => 1e9,
        "KiB" => 1024.0,
        "MiB" => 1024.0 * 1024.0,
        "GiB" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use K, M, G, KiB, MiB or GiB"
            ));
        }
    };
    let bytes = value * factor;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(bytes.round() as u64)
}

/// Parses a block size: like [`parse_size`], where `1M` means 1 MiB (block
/// sizes are powers of two).
pub fn parse_block_size(text: &str) -> Result<usize, String> {
    let t = text.trim();
    let binary = t
        .strip_suffix('K')
        .map(|n| (n, 1usize << 10))
        .or_else(|| t.strip_suffix('M').map(|n| (n, 1 << 20)));
    let bytes = match binary {
        Some((n, factor)) => n
            .parse::<usize>()
            .map_err(|_| format!("`{text}` is not a block size (e.g. 1M, 64K)"))?
            .checked_mul(factor)
            .ok_or_else(|| format!("`{text}` is out of range"))?,
        None => usize::try_from(parse_size(t)?).map_err(|_| format!("`{text}` is out of range"))?,
    };
    Ok(bytes)
}

/// Parses a rate in bytes per second: a size per second (`100MB/s`, `5MiB/s`,
/// `100M`) or bits per second (`512Kbps`, `102Mbps`, `1Gbps`).
pub fn parse_rate(text: &str) -> Result<u64, String> {
    let t = text.trim();
    for (suffix, bits) in [("Kbps", 1e3), ("Mbps", 1e6), ("Gbps", 1e9), ("bps", 1.0)] {
        if let Some(n) = t.strip_suffix(suffix) {
            let v: f64 = n
                .trim()
                .parse()
                .map_err(|_| format!("`{text}` is not a rate"))?;
            let bytes = v * bits / 8.0;
            if !(bytes >= 1.0 && bytes.is_finite()) {
                return Err(format!("`{text}` is below 1 byte per second"));
            }
            return Ok(bytes.round() as u64);
        }
    }
    let bytes = parse_size(t.strip_suffix("/s").unwrap_or(t))?;
    if bytes == 0 {
        return Err(format!("`{text}` is zero: leave the limit out for none"));
    }
    Ok(bytes)
}

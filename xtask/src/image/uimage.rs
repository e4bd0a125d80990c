//! U-Boot's legacy image format for boot scripts (what `mkimage -A arm64 -O linux
//! -T script -C none -d script.txt boot.scr` writes): a 64-byte big-endian header
//! with a CRC32 of itself and of the data, then the data. A script image's data is a
//! multi-file list: the script length, a zero terminator, then the script.
use anyhow::{bail, ensure, Result};

/// `IH_MAGIC`.
pub const MAGIC: u32 = 0x2705_1956;
pub const HEADER_LEN: usize = 64;
/// `IH_NMLEN`: bytes of the name field.
pub const NAME_LEN: usize = 32;
pub const OS_LINUX: u8 = 5;
pub const ARCH_ARM64: u8 = 22;
pub const TYPE_SCRIPT: u8 = 6;
pub const COMP_NONE: u8 = 0;

/// The fields of a legacy image header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    pub header_crc: u32,
    pub time: u32,
    pub data_size: u32,
    pub load: u32,
    pub entry: u32,
    pub data_crc: u32,
    pub os: u8,
    pub arch: u8,
    pub image_type: u8,
    pub comp: u8,
    pub name: String,
}

/// A script image holding `script`, named `name` (cut to 31 bytes), created at
/// `time` (seconds since 1970, as mkimage's `SOURCE_DATE_EPOCH`).
pub fn script_image(script: &str, name: &str, time: u32) -> Result<Vec<u8>> {
    let len = u32::try_from(script.len())?;
    ensure!(len > 0, "an empty boot script");
    let mut data = Vec::with_capacity(script.len() + 8);
    data.extend_from_slice(&len.to_be_bytes());
    data.extend_from_slice(&0u32.to_be_bytes());
    data.extend_from_slice(script.as_bytes());
    let mut head = [0u8; HEADER_LEN];
    head[0..4].copy_from_slice(&MAGIC.to_be_bytes());
    head[8..12].copy_from_slice(&time.to_be_bytes());
    head[12..16].copy_from_slice(&u32::try_from(data.len())?.to_be_bytes());
    head[24..28].copy_from_slice(&crc32fast::hash(&data).to_be_bytes());
    head[28] = OS_LINUX;
    head[29] = ARCH_ARM64;
    head[30] = TYPE_SCRIPT;
    head[31] = COMP_NONE;
    let name = name.as_bytes();
    let n = name.len().min(NAME_LEN - 1);
    head[32..32 + n].copy_from_slice(&name[..n]);
    let hcrc = crc32fast::hash(&head);
    head[4..8].copy_from_slice(&hcrc.to_be_bytes());
    let mut out = head.to_vec();
    out.extend_from_slice(&data);
    Ok(out)
}

fn be32(b: &[u8], at: usize) -> u32 {
    let mut w = [0u8; 4];
    w.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(w)
}

/// Reads and checks a legacy image header (magic, header CRC, data size and CRC).
pub fn parse(image: &[u8]) -> Result<Header> {
    ensure!(
        image.len() >= HEADER_LEN,
        "shorter than a legacy image header"
    );
    ensure!(
        be32(image, 0) == MAGIC,
        "not a U-Boot legacy image (bad magic)"
    );
    let mut head = [0u8; HEADER_LEN];
    head.copy_from_slice(&image[..HEADER_LEN]);
    let header_crc = be32(&head, 4);
    head[4..8].fill(0);
    if crc32fast::hash(&head) != header_crc {
        bail!("header CRC mismatch");
    }
    let data_size = be32(image, 12);
    let data = image
        .get(HEADER_LEN..HEADER_LEN + data_size as usize)
        .ok_or_else(|| anyhow::anyhow!("image shorter than its data size {data_size}"))?;
    let data_crc = be32(image, 24);
    ensure!(crc32fast::hash(data) == data_crc, "data CRC mismatch");
    let name_bytes = &image[32..32 + NAME_LEN];
    let end = name_bytes.iter().position(|b| *b == 0).unwrap_or(NAME_LEN);
    Ok(Header {
        header_crc,
        time: be32(image, 8),
        data_size,
        load: be32(image, 16),
        entry: be32(image, 20),
        data_crc,
        os: image[28],
        arch: image[29],
        image_type: image[30],
        comp: image[31],
        name: String::from_utf8_lossy(&name_bytes[..end]).into_owned(),
    })
}

/// The script text of a checked script image.
pub fn script_text(image: &[u8]) -> Result<String> {
    let h = parse(image)?;
    ensure!(h.image_type == TYPE_SCRIPT, "not a script image");
    let data = &image[HEADER_LEN..HEADER_LEN + h.data_size as usize];
    ensure!(data.len() >= 8, "script image without a length list");
    let len = be32(data, 0) as usize;
    ensure!(be32(data, 4) == 0, "script image with more than one part");
    let text = data
        .get(8..8 + len)
        .ok_or_else(|| anyhow::anyhow!("script length {len} past the data"))?;
    Ok(String::from_utf8_lossy(text).into_owned())
}

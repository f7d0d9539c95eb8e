//! Reading the partition: which sectors hold a journal and in what order, and where the
//! newest good record of each key is. A save and a load both start with a [`Journal::scan`];
//! nothing of it is kept between calls (see the [module docs](super)).

use embedded_storage_async::nor_flash::NorFlash;

use super::record::record_crc;
use super::{
    Journal, JournalBuf, JournalError, MAGIC, MAX_KEYS, MAX_SECTORS, NO_KEY, RECORD_HEADER, RecordKey, SECTOR_HEADER,
    SLOTS, VALUE_MAX,
};

fn u32_le(bytes: &[u8]) -> u32 {
    u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

pub(super) fn blank(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0xFF)
}

/// What a sector's header says.
enum SectorHeader {
    Valid {
        seq: u32,
    },
    /// Erased, or ours but torn (a cut program or erase only moves bits towards the
    /// erased state or towards the header, so the magic's one-bits are all still set).
    Unused,
    /// Something that was never a journal header.
    Foreign,
}

fn sector_header(h: &[u8]) -> SectorHeader {
    let (magic, seq, check) = (u32_le(&h[0..4]), u32_le(&h[4..8]), u32_le(&h[8..12]));
    if magic == MAGIC && check == !seq && blank(&h[12..16]) {
        SectorHeader::Valid { seq }
    } else if magic & MAGIC == MAGIC {
        SectorHeader::Unused
    } else {
        SectorHeader::Foreign
    }
}

/// The newest good record of one key.
#[derive(Clone, Copy)]
pub(super) struct Newest {
    pub(super) key: u8,
    /// Flash address of its slot.
    pub(super) at: u32,
}

/// What reading the whole partition found.
pub(super) struct Scan {
    /// The sector saves go to: index, `seq`, and its first slot after the last used one.
    pub(super) current: Option<(u32, u32, u32)>,
    /// A sector header that no journal writes.
    pub(super) foreign: bool,
    pub(super) newest: heapless::Vec<Newest, MAX_KEYS>,
}

impl Scan {
    pub(super) fn find(&self, key: RecordKey) -> Option<u32> {
        self.newest.iter().find(|n| n.key == key.id()).map(|n| n.at)
    }
}

impl Journal {
    /// Reads every sector header and every record of the valid sectors, oldest first.
    pub(super) async fn scan<F: NorFlash>(
        &self,
        flash: &mut F,
        buf: &mut JournalBuf,
    ) -> Result<Scan, JournalError<F::Error>> {
        Self::check_flash::<F>().map_err(JournalError::Layout)?;
        let mut scan = Scan {
            current: None,
            foreign: false,
            newest: heapless::Vec::new(),
        };
        let newest = self.newest_trusted_seq(flash, buf).await?;
        let mut after: Option<u32> = None;
        loop {
            // The valid sector with the next higher seq.
            let mut next: Option<(u32, u32)> = None;
            for index in 0..self.sectors() {
                flash
                    .read(self.sector_at(index), &mut buf[..SECTOR_HEADER as usize])
                    .await
                    .map_err(JournalError::Flash)?;
                match sector_header(&buf[..SECTOR_HEADER as usize]) {
                    SectorHeader::Valid { seq } if newest.is_none_or(|n| seq <= n) => {
                        let higher = after.is_none_or(|a| seq > a);
                        if higher && next.is_none_or(|(_, s)| seq < s) {
                            next = Some((index, seq));
                        }
                    }
                    // A sector far above the others: damage, passed over (see above).
                    SectorHeader::Valid { .. } | SectorHeader::Unused => {}
                    SectorHeader::Foreign => scan.foreign = true,
                }
            }
            let Some((index, seq)) = next else {
                return Ok(scan);
            };
            after = Some(seq);
            let mut free = 0;
            for slot in 0..SLOTS {
                let at = self.slot_at(index, slot);
                let record = &mut buf[..];
                flash.read(at, record).await.map_err(JournalError::Flash)?;
                if blank(&record[..RECORD_HEADER]) {
                    continue;
                }
                free = slot + 1;
                let (key, len) = (record[0], usize::from(record[1]));
                let good = key != NO_KEY
                    && len <= VALUE_MAX
                    && blank(&record[2..4])
                    && u32_le(&record[4..8]) == record_crc(record, len);
                if !good {
                    continue;
                }
                match scan.newest.iter_mut().find(|n| n.key == key) {
                    Some(n) => n.at = at,
                    None => {
                        // Past MAX_KEYS keys (all of them a later firmware's), a key is
                        // neither followed nor carried to the next sector.
                        let _ = scan.newest.push(Newest { key, at });
                    }
                }
            }
            scan.current = Some((index, seq, free));
        }
    }

    /// The highest `seq` of a sector to believe. The journal opens its sectors in turn, each
    /// at the `seq` after the last, so the valid sectors' numbers lie within a few of each
    /// other; a header far above all the others is damage that happens to check out (a
    /// torn or flipped header), and taking it for the newest sector would hide every save
    /// made after it, in the sector opened at the `seq` after it (wrapped, or past it). Such
    /// sectors are passed over like a torn header, and erased when their turn comes.
    async fn newest_trusted_seq<F: NorFlash>(
        &self,
        flash: &mut F,
        buf: &mut JournalBuf,
    ) -> Result<Option<u32>, JournalError<F::Error>> {
        let mut seqs: heapless::Vec<u32, { MAX_SECTORS as usize }> = heapless::Vec::new();
        for index in 0..self.sectors() {
            flash
                .read(self.sector_at(index), &mut buf[..SECTOR_HEADER as usize])
                .await
                .map_err(JournalError::Flash)?;
            if let SectorHeader::Valid { seq } = sector_header(&buf[..SECTOR_HEADER as usize]) {
                let _ = seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let spread = 2 * self.sectors();
        while let [.., below, top] = seqs[..] {
            if top - below <= spread {
                break;
            }
            seqs.pop();
        }
        Ok(seqs.last().copied())
    }

    /// The value of the record in the slot at `at`, read into `buf`.
    pub(super) async fn read_value<'b, F: NorFlash>(
        &self,
        flash: &mut F,
        at: u32,
        buf: &'b mut JournalBuf,
    ) -> Result<&'b [u8], JournalError<F::Error>> {
        flash.read(at, &mut buf[..]).await.map_err(JournalError::Flash)?;
        let len = usize::from(buf[1]);
        Ok(&buf[RECORD_HEADER..RECORD_HEADER + len])
    }
}

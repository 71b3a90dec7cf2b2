//! IPv4 prefixes and the addresses Azure lets a NIC have in a subnet.
//!
//! Azure reserves five addresses of every subnet: the network address, the
//! gateway (`.1`), two for its DNS (`.2`, `.3`) and the broadcast address.
//! Dynamic allocation hands out the lowest free address from the fifth on.

use std::net::Ipv4Addr;

/// An IPv4 prefix such as `10.20.1.0/24`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    /// The network address (host bits zero).
    pub network: Ipv4Addr,
    /// Prefix length, 0 to 32.
    pub len: u8,
}

impl Prefix {
    /// Parses `a.b.c.d/n`; host bits must be zero, as Azure requires.
    pub fn parse(text: &str) -> Result<Prefix, String> {
        let (addr, len) = text
            .split_once('/')
            .ok_or_else(|| format!("`{}` is not a CIDR prefix (a.b.c.d/n)", text.escape_debug()))?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| format!("`{}` is not an IPv4 CIDR prefix", text.escape_debug()))?;
        let len: u8 =
            len.parse().ok().filter(|l| *l <= 32).ok_or_else(|| {
                format!("`{}` has a prefix length outside 0-32", text.escape_debug())
            })?;
        let prefix = Prefix { network: addr, len };
        if u32::from(addr) & !prefix.mask() != 0 {
            return Err(format!(
                "`{}` has host bits set; the network address is {}/{len}",
                text.escape_debug(),
                Ipv4Addr::from(u32::from(addr) & prefix.mask())
            ));
        }
        Ok(prefix)
    }

    fn mask(self) -> u32 {
        if self.len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.len))
        }
    }

    /// Whether `addr` is inside the prefix.
    pub fn contains(self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & self.mask() == u32::from(self.network)
    }

    /// Whether all of `other` is inside this prefix.
    pub fn covers(self, other: Prefix) -> bool {
        other.len >= self.len && self.contains(other.network)
    }

    fn first(self) -> u32 {
        u32::from(self.network)
    }

    fn last(self) -> u32 {
        self.first() | !self.mask()
    }

    /// The gateway Azure gives the subnet (its first host address).
    pub fn gateway(self) -> Ipv4Addr {
        Ipv4Addr::from(self.first().saturating_add(1))
    }

    /// Whether Azure reserves `addr` in this subnet (it must be inside it).
    pub fn is_reserved(self, addr: Ipv4Addr) -> bool {
        let a = u32::from(addr);
        a < self.first().saturating_add(4) || a == self.last()
    }

    /// The lowest address a NIC may get that `taken` does not hold.
    pub fn first_free(self, taken: &[Ipv4Addr]) -> Option<Ipv4Addr> {
        let start = self.first().checked_add(4)?;
        (start..self.last())
            .map(Ipv4Addr::from)
            .find(|a| !taken.contains(a))
    }
}

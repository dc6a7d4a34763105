/**
 * The IP ranges outgoing federation must not connect to (config
 * `federation.ip_range_blocklist`, with `ip_range_allowlist` as exceptions).
 * Server names are chosen by remote parties, so without this check a name
 * resolving to 10.0.0.1 or 127.0.0.1 would let anyone make this server send
 * requests into its own network (server-side request forgery).
 */
import { BlockList, isIP } from 'node:net';

function toBlockList(ranges: readonly string[]): BlockList {
  const list = new BlockList();
  for (const range of ranges) {
    const slash = range.indexOf('/');
    const address = slash < 0 ? range : range.slice(0, slash);
    const family = isIP(address);
    if (family === 0) throw new Error(`not an IP range: ${range}`);
    const prefix = slash < 0 ? (family === 4 ? 32 : 128) : Number(range.slice(slash + 1));
    list.addSubnet(address, prefix, family === 4 ? 'ipv4' : 'ipv6');
  }
  return list;
}

/** `::ffff:a.b.c.d` is IPv4 on the wire: check it against the IPv4 ranges too. */
const MAPPED_V4 = /^::ffff:(\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3})$/i;

export class IpRangeFilter {
  private readonly blocked: BlockList;
  private readonly allowed: BlockList;

  constructor(blocklist: readonly string[], allowlist: readonly string[]) {
    this.blocked = toBlockList(blocklist);
    this.allowed = toBlockList(allowlist);
  }

  /** Whether connecting to `address` (an IP literal, without brackets) is refused. Anything that is not an IP literal is refused. */
  isBlocked(address: string): boolean {
    const family = isIP(address);
    if (family === 0) return true;
    const candidates: Array<[string, 'ipv4' | 'ipv6']> = [[address, family === 4 ? 'ipv4' : 'ipv6']];
    const mapped = MAPPED_V4.exec(address);
    if (mapped) candidates.push([mapped[1], 'ipv4']);
    for (const [addr, type] of candidates) {
      if (this.allowed.check(addr, type)) continue;
      if (this.blocked.check(addr, type)) return true;
    }
    return false;
  }
}

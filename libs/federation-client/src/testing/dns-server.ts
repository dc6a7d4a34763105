/**
 * A DNS server on loopback UDP answering SRV questions from a table, for the
 * resolver's test against node:dns itself. Only what a query for one SRV name
 * needs of RFC 1035 (header, one question, SRV answers of RFC 2782); anything
 * else is answered NXDOMAIN.
 */
import { createSocket, type Socket } from 'node:dgram';

export interface SrvAnswer {
  priority: number;
  weight: number;
  port: number;
  target: string;
}

function encodeName(name: string): Buffer {
  const parts = name.replace(/\.$/, '').split('.').filter((p) => p !== '');
  return Buffer.concat([...parts.map((p) => Buffer.concat([Buffer.from([p.length]), Buffer.from(p, 'ascii')])), Buffer.from([0])]);
}

function decodeName(packet: Buffer, offset: number): { name: string; end: number } {
  const labels: string[] = [];
  let i = offset;
  while (packet[i] !== 0) {
    const length = packet[i];
    labels.push(packet.subarray(i + 1, i + 1 + length).toString('ascii'));
    i += 1 + length;
  }
  return { name: labels.join('.'), end: i + 1 };
}

const TYPE_SRV = 33;

export async function startDnsServer(records: Record<string, SrvAnswer[]>): Promise<{ address: string; queries: string[]; close(): Promise<void> }> {
  const queries: string[] = [];
  const socket: Socket = createSocket('udp4');
  socket.on('message', (packet, remote) => {
    const id = packet.readUInt16BE(0);
    const { name, end } = decodeName(packet, 12);
    const qtype = packet.readUInt16BE(end);
    queries.push(name);
    const question = packet.subarray(12, end + 4);
    const answers = qtype === TYPE_SRV ? (records[name.toLowerCase()] ?? []) : [];
    const known = name.toLowerCase() in records;
    const header = Buffer.alloc(12);
    header.writeUInt16BE(id, 0);
    // QR=1, opcode 0, AA=1, RD copied, RA=1; RCODE 3 (NXDOMAIN) for an unknown name.
    header.writeUInt16BE(0x8400 | (packet.readUInt16BE(2) & 0x0100) | 0x0080 | (known ? 0 : 3), 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(answers.length, 6);
    const rrs = answers.map((a) => {
      const target = encodeName(a.target);
      const rdata = Buffer.alloc(6);
      rdata.writeUInt16BE(a.priority, 0);
      rdata.writeUInt16BE(a.weight, 2);
      rdata.writeUInt16BE(a.port, 4);
      const fixed = Buffer.alloc(10);
      fixed.writeUInt16BE(TYPE_SRV, 0);
      fixed.writeUInt16BE(1, 2); // class IN
      fixed.writeUInt32BE(60, 4); // TTL
      fixed.writeUInt16BE(6 + target.length, 8);
      // Name: a pointer to the question's name at offset 12.
      return Buffer.concat([Buffer.from([0xc0, 12]), fixed, rdata, target]);
    });
    socket.send(Buffer.concat([header, question, ...rrs]), remote.port, remote.address);
  });
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  return {
    address: `127.0.0.1:${socket.address().port}`,
    queries,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

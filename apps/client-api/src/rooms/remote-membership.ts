import { Inject, Injectable, Optional } from '@nestjs/common';
import { FEDERATION_CLIENT, FederationHttpError, FederationUnreachableError, type FederationClient } from '@atrium/federation-client';
import { Errors, MatrixError } from '@atrium/http';
import { domainOfId, parseRoomId, type JsonObject } from '@atrium/matrix';
import { RoomsService } from './rooms.service';

/**
 * What client-api decides before a membership change goes through other
 * servers (docs/federation-design.md "membership handshakes"): whether this
 * server can act in the room itself, where a room alias points (with the
 * servers the directory names), and which servers to ask, in order.
 */
@Injectable()
export class RemoteMembership {
  constructor(
    private readonly rooms: RoomsService,
    @Optional() @Inject(FEDERATION_CLIENT) private readonly federation?: FederationClient,
  ) {}

  /** Whether a user of this server is joined to the room, so this server can write to it itself. */
  async isResident(roomId: string): Promise<boolean> {
    if (!(await this.rooms.store.getRoom(roomId))) return false;
    const serverName = this.rooms.serverName;
    return (await this.rooms.store.joinedUsers(roomId)).some((u) => domainOfId(u) === serverName);
  }

  /**
   * `#alias:server` → room ID and the servers to join through: a local alias
   * from the store; another server's by its directory (server-server-api
   * "Querying for information", GET /query/directory; 404 as the client's
   * M_NOT_FOUND).
   */
  async resolveAlias(alias: string): Promise<{ roomId: string; servers: string[] }> {
    this.rooms.checkAlias(alias);
    const server = domainOfId(alias);
    if (server === this.rooms.serverName || !this.federation || server === undefined) return { roomId: await this.rooms.resolveAlias(alias), servers: [] };
    let answer: JsonObject;
    try {
      answer = await this.federation.request<JsonObject>({ destination: server, method: 'GET', path: '/_matrix/federation/v1/query/directory', query: { room_alias: alias } });
    } catch (err) {
      // Not there, or its server cannot be reached: either way the alias maps to no room this
      // server can find (directory.yaml: 404 "There is no mapped room ID for this room alias").
      if (err instanceof FederationHttpError && err.status === 404) throw Errors.notFound(`Room alias ${alias} not found`);
      if (err instanceof FederationUnreachableError) throw Errors.notFound(`Room alias ${alias} could not be looked up: ${server} is unreachable (${err.reason})`);
      throw new MatrixError(502, 'M_UNKNOWN', `Could not look up ${alias} on ${server}: ${(err as Error).message}`);
    }
    const roomId = answer['room_id'];
    if (typeof roomId !== 'string' || !roomId.startsWith('!')) throw new MatrixError(502, 'M_UNKNOWN', `${server} answered the alias lookup without a room ID`);
    const servers = Array.isArray(answer['servers']) ? answer['servers'].filter((s): s is string => typeof s === 'string') : [];
    return { roomId, servers: [server, ...servers] };
  }

  /**
   * The servers to try, in order: the client's (`via`, `server_name`), the
   * alias directory's, the room ID's own server (room versions before 12
   * name it; a v12 ID is a hash), the server of whoever invited the user,
   * and the servers of the senders of the stripped state kept with an
   * invite or knock (how a v12 knock is withdrawn). This server is left out.
   */
  async candidateServers(roomId: string, userId: string, given: readonly string[]): Promise<string[]> {
    const out: string[] = [...given];
    const parsed = parseRoomId(roomId);
    if (parsed?.kind === 'domain') out.push(parsed.domain);
    const membership = await this.rooms.store.getMembership(roomId, userId);
    if (membership && (membership.membership === 'invite' || membership.membership === 'knock' || membership.membership === 'leave')) {
      const inviter = domainOfId(membership.sender);
      if (inviter) out.push(inviter);
      // A knock's or leave's sender is the user; the invite before it names the inviter, and
      // the stripped state kept with an invite or knock names servers that were in the room.
      const record = await this.rooms.store.getEvent(membership.event_id);
      if (record) {
        const unsigned = JSON.parse(record.unsigned) as { prev_sender?: unknown; invite_room_state?: unknown; knock_room_state?: unknown };
        if (typeof unsigned.prev_sender === 'string' && domainOfId(unsigned.prev_sender)) out.push(domainOfId(unsigned.prev_sender) as string);
        const stripped = unsigned.invite_room_state ?? unsigned.knock_room_state;
        for (const entry of Array.isArray(stripped) ? stripped : []) {
          const sender = (entry as { sender?: unknown } | null)?.sender;
          const server = typeof sender === 'string' ? domainOfId(sender) : undefined;
          if (server) out.push(server);
        }
      }
    }
    return [...new Set(out)].filter((s) => s !== this.rooms.serverName && s !== '');
  }
}

/** `via` / `server_name` query values (one or repeated) as a list. */
export function queryList(value: unknown): string[] {
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  return list.filter((v): v is string => typeof v === 'string' && v !== '');
}

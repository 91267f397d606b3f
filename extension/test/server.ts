/**
 * A real HTTP server on 127.0.0.1 that serves the routes of the server
 * extension with scripted bodies, for the unit tests of the wrapper and
 * the model.
 */

import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A scripted reply: status and body, or a function of the call count. */
export interface IReply {
  status: number;
  body: unknown;
  /** Send the body as this raw text instead of JSON. */
  raw?: string;
}

export class ScriptedServer {
  /** Replies by path under /linksight/, changed by the tests as they go. */
  replies = new Map<string, IReply>();
  /** Every path requested, in order. */
  calls: string[] = [];
  baseUrl = '';
  private server = http.createServer((request, response) => {
    const path = decodeURIComponent(
      (request.url ?? '').replace(/^\/base\/linksight\//, '')
    );
    this.calls.push(path);
    const reply = this.replies.get(path) ?? {
      status: 404,
      body: { code: 'not_found', message: `no reply scripted for ${path}` }
    };
    response.writeHead(reply.status, { 'Content-Type': 'application/json' });
    response.end(reply.raw ?? JSON.stringify(reply.body));
  });

  async start(): Promise<void> {
    await new Promise<void>(resolve =>
      this.server.listen(0, '127.0.0.1', resolve)
    );
    const port = (this.server.address() as AddressInfo).port;
    this.baseUrl = `http://127.0.0.1:${port}/base/`;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>(resolve => this.server.close(() => resolve()));
  }
}

import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, it } from 'node:test';

import { LinksightApi, LinksightApiError } from '../src/api';
import { ScriptedServer } from './server';

describe('LinksightApi', () => {
  const server = new ScriptedServer();
  let api: LinksightApi;

  before(async () => {
    await server.start();
    api = new LinksightApi(server.baseUrl, (url, init) => fetch(url, init));
  });
  after(() => server.stop());
  beforeEach(() => {
    server.replies.clear();
    server.calls = [];
  });

  it('returns the parsed body', async () => {
    server.replies.set('collaborations', {
      status: 200,
      body: [{ name: 'lung-study', members: ['A', 'B'] }]
    });

    const collaborations = await api.collaborations();

    assert.deepEqual(collaborations, [{ name: 'lung-study', members: ['A', 'B'] }]);
  });

  it('encodes the collaboration name in the path', async () => {
    server.replies.set('collaborations/a b/c/budget', {
      status: 200,
      body: { collaboration: 'a b/c', limit: null }
    });

    const budget = await api.budget('a b/c');

    assert.equal(budget.collaboration, 'a b/c');
    assert.deepEqual(server.calls, ['collaborations/a b/c/budget']);
  });

  it('raises the error code and message of an error body', async () => {
    server.replies.set('requests', {
      status: 502,
      body: { code: 'hub_unreachable', message: 'the hub did not respond' }
    });

    const error = await api.requests().catch(e => e);

    assert.ok(error instanceof LinksightApiError);
    assert.equal(error.status, 502);
    assert.equal(error.code, 'hub_unreachable');
    assert.equal(error.message, 'the hub did not respond');
    assert.equal(error.retryable, true);
  });

  it('names the status of an error without a body', async () => {
    server.replies.set('status', { status: 403, body: null, raw: 'Forbidden' });

    const error = await api.status().catch(e => e);

    assert.equal(error.code, 'http_403');
    assert.match(error.message, /returned 403: Forbidden/);
    assert.equal(error.retryable, false);
  });

  it('says to check the server extension for a non-JSON reply', async () => {
    server.replies.set('status', { status: 200, body: null, raw: '<html>' });

    const error = await api.status().catch(e => e);

    assert.equal(error.code, 'invalid_response');
    assert.match(error.message, /jupyter server extension list/);
  });

  it('raises server_unreachable when nothing answers', async () => {
    const closed = new LinksightApi('http://127.0.0.1:9/', (url, init) =>
      fetch(url, init)
    );

    const error = await closed.status().catch(e => e);

    assert.equal(error.status, 0);
    assert.equal(error.code, 'server_unreachable');
    assert.match(error.message, /did not respond to GET http:\/\/127\.0\.0\.1:9\//);
  });

  it('rejects a base URL without a trailing slash', () => {
    assert.throws(
      () => new LinksightApi('http://127.0.0.1:8888', fetch),
      /base URL "http:\/\/127\.0\.0\.1:8888" must end in "\/"/
    );
  });
});

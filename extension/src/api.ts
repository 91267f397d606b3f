/**
 * The one wrapper through which the panel calls the server extension.
 *
 * It does not import JupyterLab at run time: the plugin passes a fetch
 * function made from ServerConnection.makeRequest (which adds the Jupyter
 * server's token and XSRF header), and the unit tests pass Node's fetch.
 */

import type {
  IBudget,
  ICollaboration,
  IDataset,
  IErrorBody,
  IRequestSummary,
  IStatus
} from './tokens';

/** A fetch function, such as the one ServerConnection.makeRequest provides. */
export type Fetcher = (url: string, init: RequestInit) => Promise<Response>;

/** The error of a failed call: an HTTP error, or no response at all. */
export class LinksightApiError extends Error {
  /**
   * @param status - The HTTP status, or 0 when the Jupyter server did not respond.
   * @param code - The server extension's error code, such as `hub_unreachable`.
   */
  constructor(
    readonly status: number,
    readonly code: string,
    message: string
  ) {
    super(message);
    this.name = 'LinksightApiError';
  }

  /** Whether the same call may succeed later without any change. */
  get retryable(): boolean {
    return this.status === 0 || this.status === 502 || this.status === 503;
  }
}

/** Client of the server extension's routes under `/linksight/`. */
export class LinksightApi {
  /**
   * @param baseUrl - The Jupyter server's base URL, ending in `/`.
   * @param fetcher - Sends one HTTP request.
   */
  constructor(
    readonly baseUrl: string,
    private readonly fetcher: Fetcher
  ) {
    if (!baseUrl.endsWith('/')) {
      throw new Error(
        `base URL ${JSON.stringify(baseUrl)} must end in "/", as the ` +
          'Jupyter server settings give it'
      );
    }
  }

  /**
   * Send GET `/linksight/<path>` and return the parsed JSON body.
   *
   * @throws {LinksightApiError} With status 0 and code `server_unreachable`
   *   when the Jupyter server did not respond; with the response's status,
   *   and its code and message when it has them, for an HTTP error.
   */
  async get<T>(path: string): Promise<T> {
    const url = `${this.baseUrl}linksight/${path}`;
    let response: Response;
    try {
      response = await this.fetcher(url, { method: 'GET' });
    } catch (error) {
      throw new LinksightApiError(
        0,
        'server_unreachable',
        `the Jupyter server did not respond to GET ${url} (${String(error)}); ` +
          'check that it still runs'
      );
    }
    const text = await response.text();
    let body: unknown = null;
    try {
      body = text ? JSON.parse(text) : null;
    } catch {
      body = null;
    }
    if (!response.ok) {
      const error = isErrorBody(body) ? body : null;
      throw new LinksightApiError(
        response.status,
        error?.code ?? `http_${response.status}`,
        error?.message ??
          `GET ${url} returned ${response.status}: ${text.slice(0, 200)}`
      );
    }
    if (body === null) {
      throw new LinksightApiError(
        response.status,
        'invalid_response',
        `GET ${url} returned ${response.status} without a JSON body; is the ` +
          'linksight_kernel server extension enabled? ' +
          'Run: jupyter server extension list'
      );
    }
    return body as T;
  }

  /** Return the hub connection's state and the user. */
  status(): Promise<IStatus> {
    return this.get<IStatus>('status');
  }

  /** Return the user's collaborations. */
  collaborations(): Promise<ICollaboration[]> {
    return this.get<ICollaboration[]>('collaborations');
  }

  /** Return a collaboration's datasets and their schemas. */
  datasets(collaboration: string): Promise<IDataset[]> {
    return this.get<IDataset[]>(
      `collaborations/${encodeURIComponent(collaboration)}/datasets`
    );
  }

  /** Return the user's query budget in a collaboration. */
  budget(collaboration: string): Promise<IBudget> {
    return this.get<IBudget>(
      `collaborations/${encodeURIComponent(collaboration)}/budget`
    );
  }

  /** Return the user's own requests, newest first. */
  requests(): Promise<IRequestSummary[]> {
    return this.get<IRequestSummary[]>('requests');
  }
}

function isErrorBody(body: unknown): body is IErrorBody {
  return (
    typeof body === 'object' &&
    body !== null &&
    typeof (body as IErrorBody).code === 'string' &&
    typeof (body as IErrorBody).message === 'string'
  );
}

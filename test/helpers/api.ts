// Plain HTTP calls to a test server, to check status codes and error bodies exactly.
export interface ApiResponse {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: parsed JSON of whatever shape the endpoint returns; tests read its fields directly and assert on them
  body: any;
  bytes: Buffer;
}

export async function api(
  url: string,
  method: string,
  path: string,
  options: { token?: string | null; json?: unknown; body?: Buffer } = {},
): Promise<ApiResponse> {
  const headers: Record<string, string> = {};
  if (options.token) headers.authorization = `Bearer ${options.token}`;
  let body: string | Buffer | undefined;
  if (options.json !== undefined) {
    headers['content-type'] = 'application/json';
    body = JSON.stringify(options.json);
  } else if (options.body) {
    headers['content-type'] = 'application/octet-stream';
    body = options.body;
  }
  const response = await fetch(`${url}/api/v1${path}`, { method, headers, body });
  const bytes = Buffer.from(await response.arrayBuffer());
  let parsed: unknown = null;
  if ((response.headers.get('content-type') ?? '').includes('json')) parsed = JSON.parse(bytes.toString('utf8'));
  return { status: response.status, body: parsed, bytes };
}

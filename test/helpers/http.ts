/** Raw HTTP for server tests: status, content type, headers and body (JSON when it parses). */

export interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly headers: Headers;
  readonly body: unknown;
}

export async function call(url: string, init: RequestInit = {}): Promise<Answer> {
  const response = await fetch(url, init);
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Keep the text.
  }
  return { status: response.status, contentType: response.headers.get('content-type') ?? '', headers: response.headers, body };
}

/**
 * Rendering of EC2 Query responses. A handler returns a plain value tree whose keys are the XML
 * element names the SDK reads (`instancesSet`, `instanceState`, ...): objects become elements,
 * arrays become `<item>` lists, undefined/null members are left out, Dates become ISO-8601.
 */

export const EC2_NAMESPACE = 'http://ec2.amazonaws.com/doc/2016-11-15/';

export type XmlValue = string | number | boolean | Date | null | undefined | XmlValue[] | XmlObject;
export interface XmlObject {
  [element: string]: XmlValue;
}

export function escapeXml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&apos;');
}

function renderValue(value: XmlValue): string {
  if (value === null || value === undefined) return '';
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map((item) => element('item', item)).join('');
  if (typeof value === 'object') {
    return Object.entries(value)
      .map(([name, v]) => element(name, v))
      .join('');
  }
  return escapeXml(String(value));
}

function element(name: string, value: XmlValue): string {
  if (value === null || value === undefined) return '';
  const inner = renderValue(value);
  return inner === '' ? `<${name}/>` : `<${name}>${inner}</${name}>`;
}

export function renderResponse(action: string, requestId: string, body: XmlObject): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<${action}Response xmlns="${EC2_NAMESPACE}">` +
    `<requestId>${requestId}</requestId>${renderValue(body)}` +
    `</${action}Response>`
  );
}

export function renderError(code: string, message: string, requestId: string): string {
  return (
    `<?xml version="1.0" encoding="UTF-8"?>\n` +
    `<Response><Errors><Error><Code>${escapeXml(code)}</Code><Message>${escapeXml(message)}</Message></Error></Errors>` +
    `<RequestID>${requestId}</RequestID></Response>`
  );
}

/** EC2 renders tags as `tagSet/item/{key,value}`. */
export function tagSet(tags: Map<string, string>): XmlValue[] {
  return [...tags].map(([key, value]) => ({ key, value }));
}

import { isIP } from 'node:net';

/** Where the metrics endpoint listens: `[metrics] listen = "127.0.0.1:9464"`. */
export interface ListenAddress {
  /** An IP address or a host name; `[::1]` is given without its brackets. */
  readonly host: string;
  readonly port: number;
}

const HOSTNAME = /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

/**
 * Parses `HOST:PORT` (`127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`). The host is required: an endpoint
 * that answers on every interface must be asked for (`0.0.0.0:9464`), never the result of a forgotten host.
 * @returns the address, or a sentence saying what is wrong with the value.
 */
export function parseListenAddress(value: string): ListenAddress | string {
  const match = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  if (!match) return 'must be "HOST:PORT", e.g. "127.0.0.1:9464" or "[::1]:9464"';
  const host = match[1] ?? match[2] ?? '';
  if (match[1] !== undefined ? isIP(host) !== 6 : isIP(host) === 0 && !HOSTNAME.test(host)) {
    return `${JSON.stringify(host)} is not an IP address or a host name`;
  }
  const port = Number(match[3]);
  if (port < 1 || port > 65535) return `port ${port} is out of range (1-65535)`;
  return { host, port };
}

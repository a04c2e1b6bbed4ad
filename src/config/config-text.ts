import { ExitCode, SersyncError } from '../core/errors.ts';

/** A confxml.xml is a few KB; anything above this is the wrong file, and is never handed to the parser. */
export const MAX_CONFIG_BYTES = 1024 * 1024;

/**
 * confxml.xml bytes → the text to parse and how it was read. Throws CONFIG_INVALID for what is not a config file at
 * all: too large, UTF-16, binary (NUL bytes). Line endings are left to the XML reader, which treats CRLF as LF.
 */
export function configText(bytes: Uint8Array, displayName: string): { readonly text: string; readonly encoding: 'utf8' | 'latin1' } {
  const invalid = (message: string): SersyncError => new SersyncError('CONFIG_INVALID', message, { exitCode: ExitCode.Config });
  if (bytes.length > MAX_CONFIG_BYTES) throw configTooLarge(displayName, bytes.length);
  if ((bytes[0] === 0xff && bytes[1] === 0xfe) || (bytes[0] === 0xfe && bytes[1] === 0xff)) {
    throw invalid(`${displayName}:1: encoded as UTF-16; save it as UTF-8 (or ISO-8859-1)`);
  }
  const nul = bytes.indexOf(0);
  if (nul >= 0) {
    const line = countLines(bytes, nul);
    throw invalid(`${displayName}:${line}: holds NUL bytes, so it is binary data, not a confxml.xml; is this the right file?`);
  }
  return decodeConfigBytes(bytes);
}

/** CONFIG_INVALID for a file of `size` bytes, over MAX_CONFIG_BYTES; loadConfig says it before reading the file. */
export function configTooLarge(displayName: string, size: number): SersyncError {
  return new SersyncError(
    'CONFIG_INVALID',
    `${displayName}: ${size} bytes is too large for a confxml.xml (limit ${MAX_CONFIG_BYTES}); is this the right file?`,
    { exitCode: ExitCode.Config },
  );
}

/**
 * Bytes → text. Tutorial copies declare encoding="ISO-8859-1" but hold UTF-8 Chinese comments, so the declaration is
 * not trusted: valid UTF-8 (BOM stripped) is read as UTF-8, anything else as latin1, where every byte is one char.
 */
export function decodeConfigBytes(bytes: Uint8Array): { readonly text: string; readonly encoding: 'utf8' | 'latin1' } {
  try {
    // TextDecoder strips a UTF-8 BOM by default.
    return { text: new TextDecoder('utf-8', { fatal: true }).decode(bytes), encoding: 'utf8' };
  } catch {
    return { text: Buffer.from(bytes).toString('latin1'), encoding: 'latin1' };
  }
}

function countLines(bytes: Uint8Array, end: number): number {
  let line = 1;
  for (let i = 0; i < end; i++) if (bytes[i] === 0x0a) line++;
  return line;
}

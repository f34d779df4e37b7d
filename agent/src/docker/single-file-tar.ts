/**
 * A tar archive (ustar) holding one small regular file, in memory: the build
 * context agent/src/docker/dockerode-engine.ts sends to make a labelled image
 * needs one Dockerfile, and no file on disk.
 */
export function singleFileTar(name: string, content: string): Buffer {
  const body = Buffer.from(content, 'utf8');
  const header = Buffer.alloc(512, 0);
  const field = (offset: number, length: number, text: string): void => {
    header.write(text, offset, length, 'ascii');
  };
  const octal = (offset: number, length: number, value: number): void => {
    field(offset, length, `${value.toString(8).padStart(length - 1, '0')}\0`);
  };
  if (Buffer.byteLength(name) > 100) throw new Error(`tar entry name too long: ${name}`);
  field(0, 100, name);
  octal(100, 8, 0o644); // mode
  octal(108, 8, 0); // uid
  octal(116, 8, 0); // gid
  octal(124, 12, body.length);
  octal(136, 12, 0); // mtime: fixed, so the same content makes the same archive
  field(148, 8, '        '); // checksum is computed with this field as spaces
  field(156, 1, '0'); // regular file
  field(257, 6, 'ustar\0');
  field(263, 2, '00');
  let sum = 0;
  for (const byte of header) sum += byte;
  field(148, 8, `${sum.toString(8).padStart(6, '0')}\0 `);
  const padding = Buffer.alloc((512 - (body.length % 512)) % 512, 0);
  // Two zero blocks end the archive.
  return Buffer.concat([header, body, padding, Buffer.alloc(1024, 0)]);
}

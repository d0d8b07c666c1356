// Short names and labels are stored in an OEM code page, which the volume does not name.
// mtools writes and reads code page 850 by default, so we decode with it too (850 and 437,
// the Linux kernel's default, put the common accented letters at the same bytes).

/** Characters of bytes 0x80-0xFF in code page 850. */
const CP850_HIGH =
  'ÇüéâäàåçêëèïîìÄÅ' +
  'ÉæÆôöòûùÿÖÜø£Ø×ƒ' +
  'áíóúñÑªº¿®¬½¼¡«»' +
  '░▒▓│┤ÁÂÀ©╣║╗╝¢¥┐' +
  '└┴┬├─┼ãÃ╚╔╩╦╠═╬¤' +
  'ðÐÊËÈıÍÎÏ┘┌█▄¦Ì▀' +
  'ÓßÔÒõÕµþÞÚÛÙýÝ¯´' +
  '\u00ad±‗¾¶§÷¸°¨·¹³²■\u00a0';

/** Decode OEM bytes: ASCII below 0x80, code page 850 above. */
export function decodeOem(bytes: Uint8Array): string {
  let text = '';
  for (const byte of bytes) text += byte < 0x80 ? String.fromCharCode(byte) : CP850_HIGH[byte - 0x80]!;
  return text;
}

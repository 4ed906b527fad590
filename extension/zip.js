// A tiny ZIP writer: "stored" entries only (no compression), enough for a bundle a
// lawyer can open anywhere. Plain JavaScript, nothing fetched: the extension must work
// with no network library. Format: PKWARE APPNOTE 6.3.x, local headers, central
// directory, end of central directory; CRC-32 (IEEE), UTF-8 names (flag bit 11).
"use strict";

var CRC_TABLE = (function () {
  var table = new Uint32Array(256);
  for (var n = 0; n < 256; n++) {
    var c = n;
    for (var k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  var crc = 0xffffffff;
  for (var i = 0; i < bytes.length; i++) crc = CRC_TABLE[(crc ^ bytes[i]) & 0xff] ^ (crc >>> 8);
  return (crc ^ 0xffffffff) >>> 0;
}

function dosTime(date) {
  var time = (date.getHours() << 11) | (date.getMinutes() << 5) | Math.floor(date.getSeconds() / 2);
  var day = ((date.getFullYear() - 1980) << 9) | ((date.getMonth() + 1) << 5) | date.getDate();
  return [time & 0xffff, day & 0xffff];
}

// files: [{name: string, data: Uint8Array}] -> Uint8Array (the .zip file)
function makeZip(files, when) {
  var encoder = new TextEncoder();
  var stamp = dosTime(when || new Date());
  var locals = [];
  var centrals = [];
  var offset = 0;
  files.forEach(function (file) {
    var name = encoder.encode(file.name);
    var data = file.data;
    var crc = crc32(data);
    var local = new DataView(new ArrayBuffer(30));
    local.setUint32(0, 0x04034b50, true);
    local.setUint16(4, 20, true); // version needed
    local.setUint16(6, 0x0800, true); // UTF-8 names
    local.setUint16(8, 0, true); // stored
    local.setUint16(10, stamp[0], true);
    local.setUint16(12, stamp[1], true);
    local.setUint32(14, crc, true);
    local.setUint32(18, data.length, true);
    local.setUint32(22, data.length, true);
    local.setUint16(26, name.length, true);
    local.setUint16(28, 0, true);
    locals.push(new Uint8Array(local.buffer), name, data);
    var central = new DataView(new ArrayBuffer(46));
    central.setUint32(0, 0x02014b50, true);
    central.setUint16(4, 20, true);
    central.setUint16(6, 20, true);
    central.setUint16(8, 0x0800, true);
    central.setUint16(10, 0, true);
    central.setUint16(12, stamp[0], true);
    central.setUint16(14, stamp[1], true);
    central.setUint32(16, crc, true);
    central.setUint32(20, data.length, true);
    central.setUint32(24, data.length, true);
    central.setUint16(28, name.length, true);
    central.setUint32(42, offset, true);
    centrals.push(new Uint8Array(central.buffer), name);
    offset += 30 + name.length + data.length;
  });
  var centralSize = centrals.reduce(function (n, part) { return n + part.length; }, 0);
  var end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, files.length, true);
  end.setUint16(10, files.length, true);
  end.setUint32(12, centralSize, true);
  end.setUint32(16, offset, true);
  var parts = locals.concat(centrals, [new Uint8Array(end.buffer)]);
  var total = parts.reduce(function (n, part) { return n + part.length; }, 0);
  var out = new Uint8Array(total);
  var at = 0;
  parts.forEach(function (part) { out.set(part, at); at += part.length; });
  return out;
}

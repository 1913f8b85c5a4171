// The reference side of the differential test: cron-parser, asked what KeeperHub asks it.
//
// Usage: node oracle.js <folder holding node_modules/cron-parser>  < queries > answers
// One JSON query per input line: {"e": expression, "tz": zone, "after": epoch ms, "seed": hashSeed,
// "n": count}. One JSON answer per line, in order: {"ok": false, "error": message} when parse()
// refuses the expression; otherwise {"ok": true, "fires": [epoch ms, ...], "stop": null or the
// message next() threw before giving n fire times}.
'use strict';
const path = require('path');
const fs = require('fs');

const folder = path.resolve(process.argv[2]);
const { CronExpressionParser } = require(path.join(folder, 'node_modules', 'cron-parser'));

function answer(query) {
  let interval;
  try {
    interval = CronExpressionParser.parse(query.e, {
      currentDate: new Date(query.after),
      tz: query.tz,
      hashSeed: query.seed,
    });
  } catch (error) {
    return { ok: false, error: String(error.message) };
  }
  const fires = [];
  let stop = null;
  while (fires.length < query.n) {
    try {
      fires.push(interval.next().getTime());
    } catch (error) {
      stop = String(error.message);
      break;
    }
  }
  return { ok: true, fires, stop };
}

const lines = fs.readFileSync(0, 'utf8').split('\n').filter((line) => line.length > 0);
const out = lines.map((line) => JSON.stringify(answer(JSON.parse(line))));
process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));

// Preloaded (`NODE_OPTIONS=--import …/bench/_cpu-profile.mjs`) by `npm run bench -- gateway --profile DIR`:
// a V8 CPU profile of the whole process, written to DIR as <pid>.cpuprofile when it exits. Node 20 does
// not take `--cpu-prof` in NODE_OPTIONS, and the services are spawned with fixed arguments.
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector';

const dir = process.env.CROWBAR_BENCH_PROFILE_DIR;
if (dir) {
  const session = new Session();
  session.connect();
  session.post('Profiler.enable');
  session.post('Profiler.setSamplingInterval', { interval: 200 });
  session.post('Profiler.start');
  process.once('exit', () => {
    // An in-process session answers synchronously, so this still runs inside 'exit'.
    session.post('Profiler.stop', (err, res) => {
      if (!err) writeFileSync(`${dir}/${process.pid}.cpuprofile`, JSON.stringify(res.profile));
    });
  });
}

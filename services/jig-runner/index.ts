import { runMain } from '../../shared/service/main.js';
import { jigRunnerService } from './service.js';

await runMain(jigRunnerService, process);

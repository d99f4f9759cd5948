import { runMain } from '../../shared/service/main.js';
import { alivenessProbeService } from './service.js';

await runMain(alivenessProbeService, process);

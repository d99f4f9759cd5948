import { runMain } from '../../shared/service/main.js';
import { provisionerService } from './service.js';

await runMain(provisionerService, process);

import { runMain } from '../../shared/service/main.js';
import { annealerService } from './service.js';

await runMain(annealerService, process);

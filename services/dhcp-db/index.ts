import { runMain } from '../../shared/service/main.js';
import { dhcpDbService } from './service.js';

await runMain(dhcpDbService, process);

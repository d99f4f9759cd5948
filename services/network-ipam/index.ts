import { runMain } from '../../shared/service/main.js';
import { networkIpamService } from './service.js';

await runMain(networkIpamService, process);

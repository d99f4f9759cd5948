import { runMain } from '../../shared/service/main.js';
import { dnsDbService } from './service.js';

await runMain(dnsDbService, process);

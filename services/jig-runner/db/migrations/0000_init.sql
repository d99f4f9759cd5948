CREATE SCHEMA IF NOT EXISTS "jig_runner";
--> statement-breakpoint
CREATE TABLE "jig_runner"."outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"subject" text NOT NULL,
	"envelope" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "jig_runner"."runlogs" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"run_id" integer NOT NULL,
	"noderole_id" integer NOT NULL,
	"attempt" integer NOT NULL,
	"runner" text NOT NULL,
	"jig" text NOT NULL,
	"ok" boolean,
	"log" text DEFAULT '' NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
CREATE INDEX "runlogs_noderole" ON "jig_runner"."runlogs" USING btree ("noderole_id");--> statement-breakpoint
CREATE INDEX "runlogs_run" ON "jig_runner"."runlogs" USING btree ("run_id");
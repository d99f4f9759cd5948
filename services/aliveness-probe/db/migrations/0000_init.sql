CREATE SCHEMA IF NOT EXISTS "aliveness_probe";
--> statement-breakpoint
CREATE TABLE "aliveness_probe"."addresses" (
	"allocation_id" integer PRIMARY KEY NOT NULL,
	"node_id" integer NOT NULL,
	"address" text NOT NULL,
	"family" text NOT NULL,
	"deleted" boolean DEFAULT false NOT NULL
);
--> statement-breakpoint
CREATE TABLE "aliveness_probe"."nodes" (
	"id" integer PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"alive" boolean NOT NULL,
	"available" boolean NOT NULL,
	"system" boolean NOT NULL,
	"ssh_host_key" text,
	"deleted" boolean DEFAULT false NOT NULL,
	"event_time" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "aliveness_probe"."outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"subject" text NOT NULL,
	"envelope" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "aliveness_probe"."probe_history" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"node_id" integer NOT NULL,
	"at" timestamp with time zone NOT NULL,
	"ok" boolean NOT NULL,
	"stage" text NOT NULL,
	"reason" text NOT NULL,
	"address" text,
	"duration_ms" real NOT NULL,
	"trigger" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "aliveness_probe"."probe_state" (
	"node_id" integer PRIMARY KEY NOT NULL,
	"verdict" text DEFAULT 'unknown' NOT NULL,
	"failures" integer DEFAULT 0 NOT NULL,
	"reason" text DEFAULT 'not probed yet' NOT NULL,
	"last_probe_at" timestamp with time zone,
	"last_success_at" timestamp with time zone,
	"last_failure_at" timestamp with time zone,
	"hold_until" timestamp with time zone
);
--> statement-breakpoint
CREATE INDEX "addresses_node_idx" ON "aliveness_probe"."addresses" USING btree ("node_id");--> statement-breakpoint
CREATE INDEX "probe_history_node_idx" ON "aliveness_probe"."probe_history" USING btree ("node_id","id");
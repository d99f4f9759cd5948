CREATE SCHEMA IF NOT EXISTS "annealer";
--> statement-breakpoint
CREATE TABLE "annealer"."outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"subject" text NOT NULL,
	"envelope" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
--> statement-breakpoint
CREATE TABLE "annealer"."runs" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"noderole_id" integer NOT NULL,
	"node_id" integer NOT NULL,
	"lane" text DEFAULT 'normal' NOT NULL,
	"state" text NOT NULL,
	"token" text NOT NULL,
	"role" text,
	"jig" text,
	"destructive" boolean DEFAULT false NOT NULL,
	"data" jsonb,
	"begins" integer DEFAULT 0 NOT NULL,
	"reason" text DEFAULT '' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"dispatched_at" timestamp with time zone,
	"deadline" timestamp with time zone,
	"finished_at" timestamp with time zone
);
--> statement-breakpoint
CREATE UNIQUE INDEX "runs_one_per_node" ON "annealer"."runs" USING btree ("node_id") WHERE state in ('claimed', 'running');--> statement-breakpoint
CREATE UNIQUE INDEX "runs_one_per_noderole" ON "annealer"."runs" USING btree ("noderole_id") WHERE state in ('queued', 'claimed', 'running');--> statement-breakpoint
CREATE INDEX "runs_state" ON "annealer"."runs" USING btree ("state");
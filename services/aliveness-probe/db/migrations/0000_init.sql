CREATE SCHEMA IF NOT EXISTS "aliveness_probe";
--> statement-breakpoint
CREATE TABLE "aliveness_probe"."outbox" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"subject" text NOT NULL,
	"envelope" jsonb NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL
);
